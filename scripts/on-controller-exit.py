"""supervisord event listener: when the controller exits, or any program is FATAL, stop the tree.

The controller decides the tree's fate. It is not restarted by supervisord (it has its own
recovery with a restart budget, so a crash loop here would only hide a permanent problem and
spam stream/start); instead this listener records its exit status in
$APPLIANCE_RUNTIME_DIR/controller.exit and asks supervisord to shut down. `appliance up` then
exits with that status, and Docker's or Kubernetes' restart policy takes over.

Events: PROCESS_STATE_EXITED (the controller ended, expectedly or not) and
PROCESS_STATE_FATAL (it, or a helper, could not be started within its retries: the tree
cannot work, a fresh start by the orchestrator is the better bet). A helper's plain EXITED is
ignored: supervisord restarts it. The on-screen shell is not essential: its user could otherwise
end the stream by killing its own session until it is FATAL.
Log lines go to stderr in the appliance's one format; stdout is the event protocol.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from supervisor import childutils

from appliance.core.files import RuntimeLayout

PROGRAM = "controller"
NOT_ESSENTIAL = ("shell",)  # the on-screen shell (its user can end it): never ends the tree


def log(level: str, message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} on-controller-exit {level} {message}", file=sys.stderr, flush=True)


def exit_status(rpc: object, state: str) -> int:
    if state == "PROCESS_STATE_FATAL":
        return 1
    try:
        info = rpc.supervisor.getProcessInfo(PROGRAM)  # type: ignore[attr-defined]
        return int(info.get("exitstatus", 1))
    except Exception as exc:
        log("WARNING", f"could not read the controller's exit status: {exc}")
        return 1


def main() -> None:
    rpc = childutils.getRPCInterface(os.environ)
    record = RuntimeLayout(Path(os.environ["APPLIANCE_RUNTIME_DIR"])).controller_exit
    while True:
        headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
        fields, _ = childutils.eventdata(payload + "\n")
        state = headers["eventname"]
        name = fields.get("processname", "?")
        if name in NOT_ESSENTIAL:
            if state == "PROCESS_STATE_FATAL":
                log("WARNING", f"{name} fatal (out of start retries): the stream goes on without it")
        elif name == PROGRAM or state == "PROCESS_STATE_FATAL":
            status = exit_status(rpc, state)
            if not record.exists():  # the first cause is the one to report
                record.write_text(f"{status}\n", encoding="ascii")
            log("INFO" if status == 0 else "ERROR",
                f"{name} {state.removeprefix('PROCESS_STATE_').lower()}, status {status}: "
                "stopping the process tree")
            try:
                rpc.supervisor.shutdown()  # type: ignore[attr-defined]
            except Exception as exc:
                log("WARNING", f"shutdown request failed: {exc}")
        childutils.listener.ok(sys.stdout)


if __name__ == "__main__":
    main()
