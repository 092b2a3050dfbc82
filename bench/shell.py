"""Benchmark: what the on-screen shell's protections cost (needs root and the appliance-shell
user, as `appliance up` run as root does).

* the pane guard: one sweep reads both panes (two tmux clients) and runs the outgoing filter on
  them; the controller does one every 3 s. CPU per sweep of the controller, of the tmux clients
  and of the tmux server (from /proc), and the share of a core at that period;
* starting as root: giving a state folder to the appliance's user and checking, as the shell's
  user, that it cannot be read (what `appliance up` adds to a start), on a state folder of
  ``--files`` files.

    .venv/bin/python bench/shell.py --sweeps 100 --files 200
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance.core.outgoing import OutgoingFilter, Secrets
from appliance.core.users import DEFAULT_SHELL_USER, ShellAccess, lookup
from appliance.media.terminal import PaneGuard
from appliance.up.privileges import TreeUsers, give_state
from tests.support.terminal import Session
from tests.support.tree import descendants, short_tmpdir, wait_until

GUARD_PERIOD_S = 3.0  # appliance/media/terminal.py's PaneGuard default


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pane_guard(sweeps: int) -> None:
    session = Session(short_tmpdir("bench-shell-"))
    try:
        wait_until(session.prompt, 15, "the shell's prompt")
        for line in range(40):
            session.term.send(f"echo line {line}: some output to fill the pane and its history")
        server = next(pid for pid in descendants(session.terminal.pid)
                      if Path(f"/proc/{pid}/comm").read_text().strip() == "tmux: server")
        values = Secrets("rtk_" + "a1b2c3d4" * 4, "sk-" + "f00ba4" * 6, "Bearer hook-" + "9z8y7x" * 5)
        guard = PaneGuard(session.term, contains_secret=OutgoingFilter(values).contains_secret,
                          on_leak=lambda pane: None)
        own0, kids0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        server0, wall0 = cpu_of(server), time.perf_counter()
        for _ in range(sweeps):
            guard.sweep()
        wall = (time.perf_counter() - wall0) / sweeps
        own1, kids1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        own = (own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime) / sweeps
        kids = (kids1.ru_utime + kids1.ru_stime - kids0.ru_utime - kids0.ru_stime) / sweeps
        srv = (cpu_of(server) - server0) / sweeps
        print(f"pane guard: {sweeps} sweeps; per sweep {wall * 1000:.1f} ms wall, CPU: controller "
              f"{own * 1000:.2f} ms, tmux clients {kids * 1000:.2f} ms, tmux server {srv * 1000:.2f} ms; "
              f"one sweep per {GUARD_PERIOD_S:g} s = {(own + kids + srv) / GUARD_PERIOD_S * 100:.2f} % of a core")
    finally:
        session.close()


def root_phase(files: int, runs: int) -> None:
    shell, nobody = lookup(DEFAULT_SHELL_USER), lookup("nobody")
    assert shell is not None and nobody is not None
    users = TreeUsers(nobody, ShellAccess(shell))
    took = []
    for _ in range(runs):
        state = short_tmpdir("bench-state-") / "state"
        for n in range(files):
            folder = state / f"d{n % 10}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"f{n}").write_text("x")
        os.chown(state, 0, 0)
        start = time.perf_counter()
        give_state(state, users)
        took.append(time.perf_counter() - start)
    print(f"starting as root: giving a state folder of {files} files to the appliance's user and checking "
          f"the shell's user cannot read it: median {statistics.median(took) * 1000:.0f} ms over {runs} runs")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweeps", type=int, default=100)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0 or lookup(DEFAULT_SHELL_USER) is None:
        print(f"needs root and the {DEFAULT_SHELL_USER} user (scripts/setup.sh)", file=sys.stderr)
        return 2
    pane_guard(args.sweeps)
    root_phase(args.files, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
