"""A chat loop in its own process, for the SIGKILL tests (not a test module).

    python chat_runner.py BASE_URL TOKEN USER_DB_ID NAME STATE_DIR [--die before:N|after:N]

Runs a :class:`ChatLoop` (Socket.IO and polling) against the sandbox until SIGTERM; prints
``ready`` once its threads run. ``--die`` kills the process with SIGKILL inside the Nth chat
send: ``before`` the request goes out, or ``after`` the platform took the message but before the
loop could record that — the two moments a crash can split a send.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from appliance.chat import ChatLoop
from appliance.chat.settings import ChatConfig
from appliance.core.store import StateStore
from appliance.retake.client import RetakeClient
from appliance.retake.credentials import Secret
from appliance.retake.settings import RetakeConfig

WALLET = "11111111111111111111111111111111"


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("base_url", "token", "user", "name", "state_dir"):
        parser.add_argument(name)
    parser.add_argument("--die", default="")
    args = parser.parse_args()
    client = RetakeClient(RetakeConfig(base_url=args.base_url, sandbox=True, timeout_s=5, backoff_s=0.05,
                                       backoff_max_s=0.2)).with_token(Secret(args.token))
    if args.die:
        when, count = args.die.split(":")
        calls = [0]
        send = client.chat_send

        def dying_send(message: str, destination: str):
            calls[0] += 1
            if calls[0] == int(count) and when == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            result = send(message, destination)
            if calls[0] == int(count) and when == "after":
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        client.chat_send = dying_send  # type: ignore[method-assign]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    cfg = ChatConfig(poll_s=1, quiet_poll_s=1, socket_poll_s=2, quiet_after_s=600, realtime=True,
                     max_messages_per_minute=120, burst=20)
    loop = ChatLoop(client, cfg, user_db_id=args.user, agent_name=args.name, state=StateStore(args.state_dir),
                    stop_event=stop, agent_wallet=WALLET)
    loop.baseline()
    loop.start()
    print("ready", flush=True)
    stop.wait()
    loop.join(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
