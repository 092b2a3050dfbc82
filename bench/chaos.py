#!/usr/bin/env python3
"""Chaos: the whole appliance (`appliance up`) live against the sandbox while a seeded schedule
breaks things, then a table of what it survived.

What it breaks, one fault at a time (the next once the stream is back, or the bound passed):
  api kinds      POST /_sandbox/faults {"kind": status|ratelimit|reset|slow|truncate, ...} on an
                 endpoint the appliance polls (stream/status, stream/comments) or on stream/start
                 with the encoder killed (so a recovery has to go through it)
  publish_refused  the ingest refuses the next publishes, and the encoder is killed
  kill-ffmpeg / kill-pulseaudio / kill-xvfb   SIGKILL by pid (supervisord restarts the helpers)
  kill-controller  SIGKILL of `appliance live`: the tree ends and this script restarts
                 `appliance up` at once, as an orchestrator's restart policy would
A fault kind the running sandbox does not know (HTTP 400, or not echoed back) counts as "not
injected". Faults on stream/chat/send are left out on purpose: what to do with a reply the
platform refused is the chat loop's policy, measured by the comment rows below anyway.

Meanwhile a viewer comments every few seconds, each under its own name (the host brain names
whom it answers), so answers are matched to comment ids; the notification webhook and every
outgoing HTTP proxy point at a decoy server that records any request (the token must never
reach it); the tree's processes and logs are searched for the token.

Prints: faults by kind (injected, survived, took the stream down, time back to live median and
max), comments posted/answered (none twice, none lost), stream/start calls and RTMP publishes
against the restart budget, requests that carried the token to another host, token in a
child's environment or the logs, controller exits.

    .venv/bin/python bench/chaos.py                  # 10 minutes, seed 1
    .venv/bin/python bench/chaos.py --minutes 2 --json out.json   # the CI form (tests/e2e/test_chaos.py)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from appliance.media.display import free_display, release_display  # noqa: E402
from appliance.retake.credentials import Credentials, Secret, save_credentials  # noqa: E402
from appliance.sandbox import Sandbox  # noqa: E402
from appliance.up.tree import ProcessTree  # noqa: E402
from tests.support.tree import descendants, process_name  # noqa: E402  (the tests' /proc helpers)

WALLET = "11111111111111111111111111111111"
AGENT = "ChaosAgent"
API_KINDS = ("status", "ratelimit", "reset", "slow", "truncate")
KINDS = (*API_KINDS, "publish_refused", "kill-ffmpeg", "kill-pulseaudio", "kill-xvfb", "kill-controller")
POLLED = ("agent/stream/status", "agent/stream/comments")  # polled every 2 s: a fault there is met at once
STARTS = "agent/stream/start"
KILL_REACTION_S = 15.0  # a kill is judged once the stream went down and came back, or after this long


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} chaos: {message}", flush=True)


# -- the decoy: every request that leaves for a host other than the sandbox ends here ------------

class Decoy:
    """Webhook target and HTTP(S) proxy of the tree: records every request it gets."""

    def __init__(self, token: str) -> None:
        self.token = token.encode()
        self.requests: list[dict[str, Any]] = []
        decoy = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10

            def log_message(self, *args: Any) -> None:
                pass

            def _record(self) -> None:
                length = self.headers.get("Content-Length", "0")
                body = self.rfile.read(int(length)) if length.isdigit() else b""
                raw = self.requestline.encode() + bytes(self.headers) + body
                decoy.requests.append({"method": self.command, "target": self.path[:200],
                                       "token": decoy.token in raw})
                self.send_response(403 if self.command == "CONNECT" else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_CONNECT = _record

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def leaks(self) -> int:
        return sum(1 for r in self.requests if r["token"])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- the orchestrator: `appliance up`, restarted whenever it ends --------------------------------

class Orchestrator:
    """Runs `appliance up` (python -m appliance.up) and restarts it when it ends, like
    `restart: always`; records every exit and whether this script caused it."""

    def __init__(self, config: Path, work: Path, env: dict[str, str]) -> None:
        self.config, self.work, self.env = config, work, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.runtime: Path | None = None
        self.exits: list[dict[str, Any]] = []
        self.expected_exit = False
        self.stopping = False
        self.starts = 0
        self.log_path = work / "tree.log"
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self.descendants_seen: dict[int, bytes] = {}

    def start(self) -> Orchestrator:
        self._spawn()
        self._thread.start()
        return self

    def _spawn(self) -> None:
        self.starts += 1
        self.runtime = Path(tempfile.mkdtemp(prefix="chaos-run-", dir="/tmp"))
        env = dict(self.env, APPLIANCE_RUNTIME_DIR=str(self.runtime), APPLIANCE_WAIT_TIMEOUT="30")
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "appliance.up", "--config", str(self.config)],
                                         env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def _watch(self) -> None:
        while not self.stopping:
            proc = self.proc
            if proc is not None and proc.poll() is not None and not self.stopping:
                self.exits.append({"time": time.monotonic(), "status": proc.returncode,
                                   "by_us": self.expected_exit})
                log(f"`appliance up` ended with status {proc.returncode}"
                    f"{' (the controller was SIGKILLed)' if self.expected_exit else ' BY ITSELF'}; restarting it")
                self.expected_exit = False
                shutil.rmtree(self.runtime or "/nonexistent", ignore_errors=True)
                time.sleep(1.0)
                self._spawn()
            time.sleep(0.2)

    def view(self) -> ProcessTree:
        return ProcessTree({"APPLIANCE_HOME": str(ROOT), "APPLIANCE_RUNTIME_DIR": str(self.runtime)})

    def pids(self) -> dict[str, int]:
        try:
            return {name: pid for name, pid in self.view().pids().items() if pid}
        except Exception:
            return {}

    def descendants(self) -> set[int]:
        return descendants(self.proc.pid) if self.proc else set()

    def scan_environments(self, token: bytes) -> list[int]:
        """Descendants of `appliance up` whose environment holds the token (up itself was given
        it by its orchestrator, as compose passes RETAKE_ACCESS_TOKEN)."""
        carriers = []
        for pid in self.descendants():
            try:
                if token in Path(f"/proc/{pid}/environ").read_bytes():
                    carriers.append(pid)
            except OSError:
                pass
        return carriers

    def stop(self) -> int | None:
        self.stopping = True
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(10)


def encoder_of(controller: int) -> int | None:
    """The controller's FFmpeg that captures the display (not a voice conversion)."""
    for pid in descendants(controller):
        try:
            if process_name(pid) == "ffmpeg" and b"x11grab" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            pass
    return None


# -- what happens, observed from the platform's side ----------------------------------------------

@dataclass
class Event:
    kind: str
    detail: str
    started: float
    injected: bool = True
    down: bool = False
    back_s: float | None = None
    survived: bool = False
    hits: int = 0


@dataclass
class Watch:
    """Polls the sandbox: is the agent live (a current-key publish into a started session), and
    which viewer comments have been answered (the agent's messages naming the viewer)."""

    sb: Sandbox
    user_id: str
    live: bool = False
    timeline: list[tuple[float, bool]] = field(default_factory=list)
    answers: dict[str, list[str]] = field(default_factory=dict)  # viewer name -> agent message ids
    _seen: set[str] = field(default_factory=set)

    def poll(self, names: Callable[[], list[str]]) -> None:
        agent = self.sb.platform.agents[self.user_id]
        events = self.sb.call(lambda: list(self.sb.platform.chats.get(self.user_id, ())))
        self.live = bool(self.sb.call(lambda: agent.is_live))
        self.timeline.append((time.monotonic(), self.live))
        wanted = names()
        for event in events:
            if event.id in self._seen or event.sender_user_id != self.user_id:
                continue
            self._seen.add(event.id)
            for name in wanted:
                if name in event.text.split(" ") or f"{name}!" in event.text or f"{name}," in event.text \
                        or f"{name}:" in event.text or f"{name}." in event.text:
                    self.answers.setdefault(name, []).append(event.id)


class Chaos:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.work = Path(tempfile.mkdtemp(prefix="chaos-", dir="/tmp"))
        self.events: list[Event] = []
        self.comments: dict[str, str] = {}  # viewer name -> comment id
        self.comment_lock = threading.Lock()
        self.stop = threading.Event()
        self.commenting = threading.Event()

    # -- set-up ----------------------------------------------------------------------------------
    def setup(self, sb: Sandbox) -> Orchestrator:
        body = {"agent_name": AGENT, "agent_description": "chaos bench", "wallet_address": WALLET,
                "image_url": "https://example.com/a.png", "ticker": "CHAOS"}
        registered = sb.call(lambda: sb.platform.register(body))
        agent = sb.platform.agents[registered["userDbId"]]
        sb.call(lambda: sb.platform.prepare_verify(agent))
        sb.call(lambda: sb.platform.verify(agent, {"tweet_url": "https://x.com/op/status/1234567890"}))
        self.token, self.user_id = registered["access_token"], registered["userDbId"]
        creds = self.work / "credentials.json"
        save_credentials(creds, Credentials(access_token=Secret(self.token), agent_name=AGENT,
                                            agent_id=registered["agent_id"], userDbId=self.user_id,
                                            wallet_address=WALLET, ticker="CHAOS"))
        self.decoy = Decoy(self.token)
        config = self.work / "appliance.yaml"
        # a display nobody uses, handed over: every `appliance up` of the run pins and reserves it
        display = free_display(range(300, 400))
        release_display(display)
        config.write_text(yaml.safe_dump({
            "agent": {"name": AGENT, "description": "chaos bench", "image_url": "https://example.com/a.png",
                      "wallet_address": WALLET, "ticker": "CHAOS"},
            "retake": {"base_url": sb.base_url, "sandbox": True, "timeout_s": 5, "retries": 2,
                       "backoff_s": 0.2, "backoff_max_s": 2},
            "paths": {"credentials": str(creds), "state_dir": str(self.work / "state")},
            # min_speed 0.5: on a shared machine a busy minute must not add speed restarts the
            # schedule did not ask for (they would count against the budget all the same)
            "stream": {"display": display, "width": self.args.width,
                       "height": self.args.height, "status_poll_s": 2, "min_speed": 0.5},
            "chat": {"poll_s": 2, "quiet_poll_s": 3},
            "notify": {"webhook_url": f"{self.decoy.url}/hook"},
            "control": {"port": 0},
            "recovery": {"backoff_s": 0.5, "backoff_max_s": 5, "max_restarts_per_hour": self.args.budget},
        }))
        proxies = dict.fromkeys(("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"),
                                self.decoy.url)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RETAKE_", "APPLIANCE_"))}
        loopback = "127.0.0.1,localhost,::1"  # requests matches IP hosts without ports: loopback is direct
        env.update(proxies, NO_PROXY=loopback, no_proxy=loopback,
                   RETAKE_ACCESS_TOKEN=self.token)  # as compose passes it: `up` moves it into a file
        self.sb, self.watch = sb, Watch(sb, self.user_id)
        return Orchestrator(config, self.work, env)

    # -- background: watching and commenting ------------------------------------------------------
    def watcher(self) -> None:
        while not self.stop.is_set():
            try:
                with self.comment_lock:
                    names = list(self.comments)
                self.watch.poll(lambda names=names: names)
            except Exception as exc:
                log(f"watch: {type(exc).__name__}: {exc}")
            self.stop.wait(0.25)

    def commenter(self) -> None:
        for seq in itertools.count(1):
            if self.stop.wait(self.args.comment_every):
                return
            if not self.commenting.is_set():
                continue
            name = f"viewer{seq:04d}"
            posted = self.sb.post_comment(f"chaos comment {seq}, are you still there?", username=name,
                                          user_db_id=self.user_id)
            with self.comment_lock:
                self.comments[name] = posted["chat_event_id"]

    # -- faults -----------------------------------------------------------------------------------
    def api_fault(self, body: dict[str, Any]) -> tuple[bool, str]:
        try:
            answer = requests.post(f"{self.sb.origin}/_sandbox/faults", json=body, timeout=10)
        except requests.RequestException as exc:
            return False, f"fault API unreachable ({type(exc).__name__})"
        if answer.status_code == 400:
            return False, f"the sandbox refuses kind {body['kind']!r}"
        if answer.status_code >= 300:
            return False, f"the sandbox answered HTTP {answer.status_code}"
        faults = answer.json().get("faults", [])
        if body["kind"] != "status" and not any(f.get("kind") == body["kind"] for f in faults):
            requests.delete(f"{self.sb.origin}/_sandbox/faults", timeout=10)  # it was taken for a plain 500
            return False, f"the sandbox does not know kind {body['kind']!r}"
        return True, json.dumps({k: v for k, v in body.items() if k != "kind"})

    def kill(self, what: str, tree: Orchestrator) -> tuple[bool, str]:
        pids = tree.pids()
        if what == "ffmpeg":
            pid = encoder_of(pids["controller"]) if pids.get("controller") else None
        elif what == "controller":
            pid = pids.get("controller")
        else:
            pid = pids.get(what)
        if not pid:
            return False, f"no {what} running"
        if what == "controller":
            tree.expected_exit = True
        os.kill(pid, signal.SIGKILL)
        return True, f"SIGKILL pid {pid}"

    def inject(self, kind: str, tree: Orchestrator) -> tuple[bool, str]:
        rng = self.rng
        if kind in API_KINDS:
            path = rng.choice((*POLLED, STARTS))
            body: dict[str, Any] = {"kind": kind, "paths": path, "count": rng.randint(2, 4)}
            if kind == "status":
                body["status"] = rng.choice((500, 502, 503))
            if kind == "ratelimit":
                body.update(status=429, retry_after=1)
            if kind == "slow":
                body["delay_s"] = rng.choice((3, 12))  # 12: longer than any call's deadline
            ok, detail = self.api_fault(body)
            if ok and path == STARTS:  # stream/start is called again only by a recovery: make one
                killed, how = self.kill("ffmpeg", tree)
                detail += f" + encoder {how}" if killed else ""
            return ok, detail
        if kind == "publish_refused":
            ok, detail = self.api_fault({"kind": kind, "count": rng.randint(1, 2)})
            if ok:
                killed, how = self.kill("ffmpeg", tree)
                detail += f" + encoder {how}" if killed else ""
            return ok, detail
        return self.kill(kind.removeprefix("kill-"), tree)

    def fault_hits(self, since: int) -> int:
        return sum(1 for entry in self.sb.requests(since) if entry.get("fault"))

    def settle(self, event: Event, tree: Orchestrator, bound: float, mark: int) -> None:
        """Wait until the stream is live again (live on two polls in a row, at least 3 s after the
        fault and, for an API fault, once a request met it or 20 s passed; for a kill, once the
        stream went down or KILL_REACTION_S passed), or ``bound`` passes;
        record whether it went down and when it came back. Faults left unmet are cleared."""
        exits_before = len([e for e in tree.exits if not e["by_us"]])
        deadline = event.started + bound
        api = event.kind in API_KINDS or event.kind == "publish_refused"
        while time.monotonic() < deadline:
            time.sleep(0.25)
            recent = [(t, live) for t, live in self.watch.timeline if t >= event.started]
            event.down = event.down or any(not live for _, live in recent)
            waited = time.monotonic() - event.started
            if api and not event.hits and waited < 20:
                event.hits = self.fault_hits(mark)
                continue
            if waited < 3 or len(recent) < 2 or not (recent[-1][1] and recent[-2][1]):
                continue
            if not api and not event.down and waited < KILL_REACTION_S:
                continue  # a kill takes the stream down, maybe only once a helper is back: wait for it
            last_down = max((t for t, live in recent if not live), default=None)
            event.back_s = 0.0 if last_down is None else \
                min(t for t, live in recent if live and t > last_down) - event.started
            break
        crashed = len([e for e in tree.exits if not e["by_us"]]) > exits_before
        event.survived = event.back_s is not None and not crashed
        if api:
            event.hits = self.fault_hits(mark)
            requests.delete(f"{self.sb.origin}/_sandbox/faults", timeout=10)

    # -- the run ------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        with Sandbox(port=0, rtmp=True, viewer_interval=0, record_dir=self.work / "recordings") as sb:
            tree = self.setup(sb).start()
            threads = [threading.Thread(target=self.watcher, daemon=True),
                       threading.Thread(target=self.commenter, daemon=True)]
            for thread in threads:
                thread.start()
            try:
                first = time.monotonic()
                while not self.watch.live:
                    if time.monotonic() - first > 120:
                        raise SystemExit(f"chaos: not live within 120 s; see {tree.log_path}")
                    time.sleep(0.25)
                log(f"live after {time.monotonic() - first:.1f} s; chaos for {self.args.minutes:g} min")
                time.sleep(3)  # the chat loop has baselined its cursor: comments from now on are questions
                self.commenting.set()
                self.chaos(tree)
                self.commenting.clear()
                self.final_settle(tree)
                leaks_env = tree.scan_environments(self.token.encode())
            finally:
                status = tree.stop()
                self.stop.set()
                self.decoy.close()
            log(f"`appliance up` stopped with status {status}")
            return self.report(sb, tree, leaks_env, status)

    def chaos(self, tree: Orchestrator) -> None:
        kinds = list(KINDS)
        self.rng.shuffle(kinds)
        schedule = itertools.cycle(kinds)
        end = time.monotonic() + self.args.minutes * 60
        while time.monotonic() < end:
            self.stop.wait(self.rng.uniform(*self.args.gap))
            kind = next(schedule)
            mark = len(self.sb.requests())
            event = Event(kind, "", time.monotonic())
            event.injected, event.detail = self.inject(kind, tree)
            self.events.append(event)
            if not event.injected:
                log(f"{kind}: not injected ({event.detail})")
                continue
            self.settle(event, tree, self.args.bound, mark)
            met = "" if kind.startswith("kill-") else f"met by {event.hits} request(s); "
            log(f"{kind}: {event.detail}; {met}{'went down, ' if event.down else ''}"
                + (f"back live after {event.back_s:.1f} s" if event.back_s is not None else "NOT back live")
                + ("" if event.survived else " — NOT SURVIVED"))

    def final_settle(self, tree: Orchestrator) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with self.comment_lock:
                pending = [n for n in self.comments if n not in self.watch.answers]
            if self.watch.live and not pending:
                break
            time.sleep(0.5)
        time.sleep(2 * 2 + 1)  # two chat polls more: a late second answer would show

    # -- the table ----------------------------------------------------------------------------------
    def report(self, sb: Sandbox, tree: Orchestrator, leaks_env: list[int], status: int | None) -> dict[str, Any]:
        entries = sb.requests()
        # requests that reached the endpoint (a status/ratelimit fault answers instead of it)
        starts = [e for e in entries if e.get("method") == "POST" and e["path"].endswith(STARTS)
                  and e.get("fault_kind") not in ("status", "ratelimit")]
        try:
            counted = len(json.loads((self.work / "state" / "state.json").read_text())["stream_starts"])
        except (OSError, ValueError, KeyError):
            counted = -1
        publishes = [e for e in entries if e.get("event") == "RTMP publish"]
        answered = {n: ids for n, ids in self.watch.answers.items() if n in self.comments}
        # what an operator or a viewer can read: the tree's log (stdout of every process), the
        # content window's text (on screen), the notifications
        state = self.work / "state"
        readable = "".join(p.read_text(errors="replace") for p in
                           (tree.log_path, *state.glob("stream.log*"), state / "notifications.log") if p.exists())
        agent = sb.platform.agents[self.user_id]
        keys = [k for k in (agent.rtmp_key, *agent.old_keys) if k]
        by_kind: dict[str, dict[str, Any]] = {}
        for kind in KINDS:
            evs = [e for e in self.events if e.kind == kind]
            done = [e for e in evs if e.injected]
            backs = [e.back_s for e in done if e.back_s is not None]
            by_kind[kind] = {"scheduled": len(evs), "injected": len(done),
                             "met": None if kind.startswith("kill-") else sum(e.hits > 0 for e in done),
                             "survived": sum(e.survived for e in done), "down": sum(e.down for e in done),
                             "back_median_s": round(statistics.median(backs), 1) if backs else None,
                             "back_max_s": round(max(backs), 1) if backs else None}
        downs = [e.back_s for e in self.events if e.injected and e.down and e.back_s is not None]
        return {
            "minutes": self.args.minutes, "seed": self.args.seed, "budget_per_hour": self.args.budget,
            "faults": by_kind,
            "injected": sum(e.injected for e in self.events),
            "survived": sum(e.survived for e in self.events if e.injected),
            "back_to_live_s": {"median": round(statistics.median(downs), 1) if downs else None,
                               "max": round(max(downs), 1) if downs else None, "outages": len(downs)},
            "comments": {"posted": len(self.comments), "answered": len(answered),
                         "twice": sorted(self.comments[n] for n, ids in answered.items() if len(ids) > 1),
                         "lost": sorted(self.comments[n] for n in self.comments if n not in answered)},
            "stream_starts": counted, "stream_start_requests": len(starts),
            "publishes_accepted": sum(e.get("status") == 200 for e in publishes),
            "publishes_refused": sum(e.get("status") != 200 for e in publishes),
            "token_to_other_hosts": self.decoy.leaks(), "requests_to_other_hosts": len(self.decoy.requests),
            "token_in_child_environments": len(leaks_env), "token_in_logs": readable.count(self.token),
            "rtmp_keys_in_logs": sum(readable.count(k) for k in keys), "rtmp_keys_checked": len(keys),
            "controller_exits": {"sigkilled_by_bench": sum(e["by_us"] for e in tree.exits),
                                 "by_itself": sum(not e["by_us"] for e in tree.exits)},
            "final_exit_status": status, "work_dir": str(self.work),
        }


def print_table(r: dict[str, Any]) -> None:
    print(f"\nchaos: {r['minutes']:g} min, seed {r['seed']}, {r['injected']} faults injected, "
          f"{r['survived']} survived")
    print("| fault | injected | met by a request | survived | stream down | back to live median / max (s) |")
    print("|---|---|---|---|---|---|")
    for kind, row in r["faults"].items():
        back = f"{row['back_median_s']} / {row['back_max_s']}" if row["back_median_s"] is not None else "-"
        missing = f" ({row['scheduled'] - row['injected']} not injected)" if row["scheduled"] > row["injected"] else ""
        met = "-" if row["met"] is None else row["met"]
        print(f"| {kind} | {row['injected']}{missing} | {met} | {row['survived']} | {row['down']} | {back} |")
    b = r["back_to_live_s"]
    c = r["comments"]
    print(f"\ntime back to live after an outage: median {b['median']} s, max {b['max']} s ({b['outages']} outages)")
    print(f"viewer comments: posted {c['posted']}, answered {c['answered']}, answered twice {len(c['twice'])}, "
          f"lost {len(c['lost'])}" + (f" (ids {', '.join(c['lost'][:5])})" if c["lost"] else ""))
    print(f"stream/start: {r['stream_starts']} counted by the restart budget (at most {r['budget_per_hour']} "
          f"per hour), {r['stream_start_requests']} requests reached the platform (client retries of a broken "
          f"answer included); RTMP publishes accepted {r['publishes_accepted']}, refused {r['publishes_refused']}")
    print(f"requests carrying the token to a host other than the sandbox: {r['token_to_other_hosts']} "
          f"(of {r['requests_to_other_hosts']} that went elsewhere); token in a child's environment: "
          f"{r['token_in_child_environments']}; in the logs, on screen or in notifications: {r['token_in_logs']}; "
          f"RTMP keys there: {r['rtmp_keys_in_logs']} (of the last {r['rtmp_keys_checked']} keys issued)")
    e = r["controller_exits"]
    print(f"controller exits: {e['sigkilled_by_bench']} SIGKILLed by the bench, {e['by_itself']} by itself; "
          f"final stop status {r['final_exit_status']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long faults are injected (default 10)")
    parser.add_argument("--seed", type=int, default=1, help="the schedule's seed (default 1)")
    parser.add_argument("--budget", type=int, default=40, help="recovery.max_restarts_per_hour (default 40)")
    parser.add_argument("--bound", type=float, default=150.0, help="seconds a fault may take to be survived")
    parser.add_argument("--comment-every", type=float, default=6.0, help="seconds between viewer comments")
    parser.add_argument("--gap", type=float, nargs=2, default=(10.0, 30.0),
                        help="seconds between one fault survived and the next (min max; default 10 30)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, state, recordings)")
    args = parser.parse_args(argv)
    for binary in ("Xvfb", "openbox", "xterm", "pulseaudio", "ffmpeg", "nginx"):
        if not shutil.which(binary):
            sys.exit(f"chaos: {binary} is missing (run scripts/setup.sh)")
    chaos = Chaos(args)
    result = chaos.run()
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if not args.keep:
        shutil.rmtree(chaos.work, ignore_errors=True)
    ok = (result["survived"] == result["injected"] and not result["comments"]["twice"]
          and not result["comments"]["lost"] and result["token_to_other_hosts"] == 0
          and result["token_in_child_environments"] == 0 and result["token_in_logs"] == 0
          and result["rtmp_keys_in_logs"] == 0
          and 0 <= result["stream_starts"] <= result["budget_per_hour"]
          and result["publishes_accepted"] <= result["budget_per_hour"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
