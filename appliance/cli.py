"""The `appliance` command.

Exit codes: 0 ok, 2 bad config or input, 1 anything else. Errors print one line:
what went wrong, where, and how to fix it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .core.errors import ApplianceError
from .core.paths import DEFAULT_CONFIG

if TYPE_CHECKING:
    from .config import Settings
    from .control.client import ControlClient
    from .retake.client import RetakeClient

log = logging.getLogger("appliance")
# = appliance.sandbox.platform.COMMENT_SHAPES (spelled here so the CLI does not import aiohttp; a test checks)
SANDBOX_COMMENT_SHAPES = ("documented", "observed", "observed_wrapped", "comment_created_at", "flat_v1",
                          "author_wallet")

HELP = {
    "register": "Register the agent on retake.tv from the config's agent: section (once; saves credentials, mode 600).",
    "verify": "Without a URL: print the exact message the human must tweet. With the tweet's URL: verify the agent.",
    "status": "Show verified, live, viewers, uptime and token address (from the running appliance, else from the API).",
    "doctor": "Check programs, fonts, encoders, credentials, API, chat brain, ports; display and sink once `up` runs.",
    "sandbox": "Run a local stand-in for retake.tv (REST, Socket.IO, RTMP ingest) on 127.0.0.1 "
               "for tests and rehearsals.",
    "up": "Start the whole process tree (Xvfb, openbox, PulseAudio, content window, controller) under supervisord.",
    "live": "Go live and stay live: the 10-step sequence, chat, thumbnails, recovery, "
            "until SIGTERM or `appliance stop`.",
    "rehearse": "Start the sandbox and the whole appliance against it, go live, show simulated viewers; Ctrl-C stops.",
    "stop": "Ask the running appliance to end the stream (stream/stop) and exit.",
    "probe": "Exit 0 when the running appliance's /health (or /ready) answers 200: "
             "the container's and Kubernetes' probe.",
    "init": "Write a starter appliance.yaml, asking for the agent's name, description, image URL, wallet and ticker.",
    "fleet": "Run one container per *.yaml in a folder (docker/podman), or render Kubernetes manifests for them.",
    "say": "Speak TEXT on stream (TTS into the sound sink; the encoder keeps running).",
    "show": "Show TEXT on screen (the content window).",
    "chat": "Post MESSAGE in the agent's own chat; with --to NAME, in another streamer's chat.",
    "viewers": "List the viewers the agent remembers (first/last seen, messages, tips, trades, notes).",
    "scene": "Switch the on-screen scene to NAME (live, starting, brb, ending, or a template of yours).",
    "voice": "Control the voice: --flush the queue, --interrupt the current line, --volume PERCENT, --mute/--unmute.",
    "direct": "Give the agent a direction (the answer to \"which direction?\"): the topic on screen and in the brain.",
    "go-live": "Start the stream of an appliance standing by (control.autostart: false); wait until it is live.",
    "terminal": "Type a command into the on-screen terminal (viewers see it), press --keys, and print the pane.",
    "console": "Print a one-time login URL for the browser console (valid 2 minutes, usable once).",
    "mcp": "Serve the MCP tools over stdio (for an agent runtime), driving the running appliance.",
}


# Started as root (the image's default user: `docker exec`, `docker compose run`, the healthcheck),
# every command but these becomes the controller's user first (appliance/up/privileges.py):
# up and rehearse switch users themselves; fleet, init, sandbox run on the host; probe reads control.json
# wherever the hold could write it (a state folder that could not be given to that user stays root's)
OWN_PRIVILEGES = {"up", "rehearse", "fleet", "init", "sandbox", "probe"}
NEEDS_SECRETS = {"register", "verify", "status", "doctor", "live", "chat"}  # read (as root) before the switch


def _settings(args: argparse.Namespace) -> Settings:
    from .config import load_config  # each command loads what it needs: --help and probe stay cheap
    return load_config(args.config)


def _control_client(args: argparse.Namespace) -> ControlClient:
    """The client of the appliance running with the config's state folder (or of the
    rehearsal `appliance rehearse` started there)."""
    from .control.client import ControlClient
    return ControlClient.from_state(_settings(args).state_dir)


def _client(settings: Settings, *, auth: bool = True) -> RetakeClient:
    from .retake.client import RetakeClient
    from .retake.credentials import resolve_credentials
    client = RetakeClient(settings.retake)
    if auth:
        client = client.with_token(resolve_credentials(settings).require_token())
    return client


def cmd_register(args: argparse.Namespace) -> int:
    from .retake.verification import register_agent
    settings = _settings(args)
    creds, path = register_agent(settings, _client(settings, auth=False))
    print(f"registered {creds.agent_name} (userDbId {creds.userDbId}); credentials saved to {path} (mode 600)")
    print("next: appliance verify   (prints the message your human posts on Twitter/X)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .retake.verification import tweet_instructions, validate_tweet_url
    settings = _settings(args)
    client = _client(settings)
    if not args.tweet_url:
        if client.verification_status().verified:
            print("already verified")
            return 0
        print(tweet_instructions(client.prepare_verify().verification_message))
        return 0
    url = validate_tweet_url(args.tweet_url)
    result = client.verify(url)
    print("verified: the agent can go live" if result.verified
          else "not verified yet: the platform did not accept the tweet")
    return 0 if result.verified else 1


def cmd_status(args: argparse.Namespace) -> int:
    from .control.client import ControlClient
    settings = _settings(args)
    try:
        control = ControlClient.from_state(settings.state_dir)
        data = control.status()
        source = f"the running appliance at {control.url}"
    except ApplianceError:
        client = _client(settings)
        status = client.stream_status()
        data = {"state": "not running here", "verified": client.verification_status().verified,
                "is_live": status.is_live, "viewers": status.viewers, "uptime_s": status.uptime_seconds,
                "token_address": status.token_address or "-"}
        source = settings.retake.base_url
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"status from {source}")
        for key, value in data.items():
            print(f"  {key:<16} {value}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import run_doctor
    return run_doctor(_settings(args) if Path(args.config).exists() else None, args.config)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from .sandbox import run_sandbox_cli
    return run_sandbox_cli(host="127.0.0.1", port=args.port, rtmp=not args.no_rtmp,
                           viewer_interval=args.viewers, comments_shape=args.comments_shape,
                           record_dir=args.record_dir)


def cmd_up(args: argparse.Namespace) -> int:
    from .up.hold import (
        up_or_hold,  # holds (alive, unready) instead of exiting where a restart would loop
    )
    control = {k: v for k, v in (("port", args.control_port), ("listen", args.control_listen)) if v is not None}
    return up_or_hold(Path(args.config), control=control)


def cmd_probe(args: argparse.Namespace) -> int:
    from .control.probe import main as probe
    from .up.place import probe_state_dir
    return probe(args.kind, Path(args.state) if args.state else probe_state_dir(Path(args.config)))


def fast_probe(argv: list[str]) -> int | None:
    """``appliance [-v] probe [health|ready] --state DIR``, answered with the standard library
    alone (:mod:`appliance.control.probe`); None for any other command line."""
    if "probe" not in argv or not any(a == "--state" or a.startswith("--state=") for a in argv):
        return None
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--config")
    parser.add_argument("command", choices=["probe"])
    parser.add_argument("kind", nargs="?", choices=["health", "ready"], default="health")
    parser.add_argument("--state", required=True)
    try:
        args, rest = parser.parse_known_args(argv)
    except SystemExit:
        return None
    if rest:
        return None
    from .control.probe import main as probe
    return probe(args.kind, Path(args.state))


def cmd_init(args: argparse.Namespace) -> int:
    from .init import run_init
    return run_init(Path(args.config), answers=vars(args), force=args.force)


def cmd_fleet(args: argparse.Namespace) -> int:
    from .config import load_config
    from .fleet.cli import run_fleet
    return run_fleet(args, load_config)


def cmd_live(args: argparse.Namespace) -> int:
    from .app import run_live
    from .up.place import display_for_live
    return run_live(display_for_live(_settings(args)))


def cmd_rehearse(args: argparse.Namespace) -> int:
    from .rehearse import run_rehearsal
    return run_rehearsal(Path(args.config), seconds=args.seconds)


def _control(args: argparse.Namespace, method: str, path: str, body: dict[str, object] | None = None) -> int:
    result = _control_client(args).call(method, path, body, timeout=150.0)
    print(json.dumps(result) if not isinstance(result, str) else result)
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    from .control.console import login_instructions
    client = _control_client(args)
    print(login_instructions(client.url, client.call("POST", "/console/ticket", {})["path"]))
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    from .control.client import ControlClient
    from .control.mcp import mcp_instructions, run_stdio
    from .control.where import find
    settings = _settings(args)
    run_stdio(ControlClient(lambda: find(settings.state_dir), timeout=150.0),  # may start before the appliance
              with_terminal=settings.control.mcp_terminal, instructions=mcp_instructions(settings))
    return 0


def cmd_terminal(args: argparse.Namespace) -> int:
    result = _control_client(args).terminal(text=args.text, enter=not args.no_enter, keys=args.keys or None,
                                            lines=args.lines)
    print(result.get("screen", ""))
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    if not args.to:
        return _control(args, "POST", "/chat", {"message": args.message})
    from .chat.cross import chat_in_stream
    from .retake.client import RetakeClient
    from .retake.credentials import resolve_credentials
    settings = _settings(args)
    token = resolve_credentials(settings).require_token()
    target, message_id = chat_in_stream(RetakeClient(settings.retake).with_token(token), args.to, args.message,
                                        secrets=[token.reveal()])
    print(f"posted in {target.username or args.to}'s chat (userDbId {target.streamer_id}, message {message_id or '-'})")
    return 0


def cmd_viewers(args: argparse.Namespace) -> int:
    from .chat.memory import list_viewers
    rows = list_viewers(_settings(args).layout.memory_db, limit=args.limit)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no viewers remembered yet")
        return 0
    print(f"{'name':<24} {'first seen':<17} {'last seen':<17} {'msgs':>5} {'tips SOL':>9} {'trades':>6} "
          f"{'streams':>7} notes")
    for r in rows:
        print(f"{r['name'][:24]:<24} {r['first_seen'][:16]:<17} {r['last_seen'][:16]:<17} {r['messages']:>5} "
              f"{r['tips_sol']:>9g} {r['trades']:>6} {r['sessions']:>7} {r['notes']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `appliance` command line: every subcommand with its arguments (each ``func`` set)."""
    parser = argparse.ArgumentParser(prog="appliance",
                                     description="Puts an AI agent live on retake.tv and keeps it there.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    # --config before the command (as docker and kubectl take options) or after it
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help=f"the YAML config (default {DEFAULT_CONFIG})")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=HELP[name], description=HELP[name])
        p.add_argument("--config", default=argparse.SUPPRESS,  # absent here: the one given before the command
                       help=f"the YAML config (default {DEFAULT_CONFIG})")
        p.set_defaults(func=func)
        return p

    add("register", cmd_register)
    add("verify", cmd_verify).add_argument("tweet_url", nargs="?", help="https://x.com/<you>/status/<id>")
    add("status", cmd_status).add_argument("--json", action="store_true", help="machine-readable output")
    add("doctor", cmd_doctor)
    p = add("sandbox", cmd_sandbox)
    p.add_argument("--port", type=int, default=8765, help="HTTP port on 127.0.0.1 (default 8765)")
    p.add_argument("--no-rtmp", action="store_true", help="no RTMP ingest (no nginx needed)")
    p.add_argument("--viewers", type=float, default=8.0, help="seconds between simulated viewer comments (0: none)")
    p.add_argument("--comments-shape", choices=SANDBOX_COMMENT_SHAPES, default="documented",
                   help="answer stream/comments in this shape (README: accepted payload variants)")
    p.add_argument("--record-dir", help="where the ingest records streams (default: a temp folder)")
    p = add("up", cmd_up)
    p.add_argument("--control-port", type=int, choices=range(1, 65536), metavar="PORT",
                   help="control.port for this run (appliance fleet pins it)")
    p.add_argument("--control-listen", choices=["127.0.0.1", "0.0.0.0"],  # noqa: S104
                   help="control.listen for this run (appliance fleet: 0.0.0.0 where the engine publishes the port)")
    add("live", cmd_live)
    add("rehearse", cmd_rehearse).add_argument("--seconds", type=float, default=0,
                                               help="stop by itself after this long (0: until Ctrl-C)")
    add("stop", lambda a: _control(a, "POST", "/stop", {}))
    p = add("say", lambda a: _control(a, "POST", "/say", {"text": a.text, "wait": a.wait}))
    p.add_argument("text")
    p.add_argument("--wait", action="store_true", help="return when it has been spoken (default: once queued)")
    add("show", lambda a: _control(a, "POST", "/show", {"text": a.text})).add_argument("text")
    p = add("chat", cmd_chat)
    p.add_argument("--to", metavar="NAME", help="another streamer's name: post in their stream instead")
    p.add_argument("message")
    p = add("viewers", cmd_viewers)
    p.add_argument("--limit", type=int, default=50, help="how many, most recently seen first (default 50)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add("scene", lambda a: _control(a, "POST", "/scene", {"name": a.name})).add_argument("name")
    add("direct", lambda a: _control(a, "POST", "/direction", {"text": a.text, "source": "cli"})).add_argument("text")
    p = add("voice", lambda a: _control(a, "POST", "/voice", {
        "flush": a.flush, "interrupt": a.interrupt, "volume": a.volume, "mute": a.mute}))
    p.add_argument("--flush", action="store_true", help="drop every line waiting to be spoken")
    p.add_argument("--interrupt", action="store_true", help="stop the line being spoken now")
    p.add_argument("--volume", type=float, help="the sink's volume in percent (0-150)")
    p.add_argument("--mute", dest="mute", action="store_true", default=None, help="mute the sink")
    p.add_argument("--unmute", dest="mute", action="store_false", help="unmute the sink")
    p = add("probe", cmd_probe)
    p.add_argument("kind", nargs="?", choices=["health", "ready"], default="health")
    p.add_argument("--state", help="the state folder (default: the config's, else the default one)")
    p = add("init", cmd_init)
    for field in ("name", "description", "image-url", "wallet", "ticker"):
        p.add_argument(f"--{field}", help=f"the agent's {field.replace('-', ' ')} (asked when not given)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    from .fleet.cli import add_fleet_arguments
    add_fleet_arguments(add("fleet", cmd_fleet))
    add("go-live", lambda a: _control(a, "POST", "/go_live", {"wait_s": a.wait})).add_argument(
        "--wait", type=float, default=60.0, help="seconds to wait for the stream to be live (default 60)")
    p = add("terminal", cmd_terminal)
    p.add_argument("text", nargs="?", help="one line to type (then Enter); omit to only read the pane")
    p.add_argument("--keys", nargs="+", help="keys to press after it: Enter C-c Up Tab ... (tmux names)")
    p.add_argument("--no-enter", action="store_true", help="type the text without pressing Enter")
    p.add_argument("--lines", type=int, default=40, help="lines of the pane to print (default 40)")
    add("console", cmd_console)
    add("mcp", cmd_mcp)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    fast = fast_probe(argv)
    if fast is not None:
        return fast
    args = build_parser().parse_args(argv)
    from .core.logs import setup_logging
    setup_logging(args.verbose)
    try:
        if args.command not in OWN_PRIVILEGES:  # as root in the image: the controller's user from here on
            from .up.privileges import become_controller
            become_controller(Path(args.config), secrets=args.command in NEEDS_SECRETS)
        return int(args.func(args) or 0)
    except ApplianceError as exc:
        print(f"appliance {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"appliance {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
