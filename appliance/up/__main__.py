"""``python -m appliance.up --config FILE [-- STAND-IN CONTROLLER ...]``: `appliance up` without
the CLI, with an optional stand-in controller (the process-tree tests and the chaos bench)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.errors import ApplianceError


def main(argv: list[str] | None = None) -> int:
    """``python -m appliance.up --config FILE [-- STAND-IN CONTROLLER ...]``: run_up
    without the CLI, with an optional stand-in controller (tests)."""
    parser = argparse.ArgumentParser(prog="python -m appliance.up")
    parser.add_argument("--config", required=True)
    parser.add_argument("controller", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    from ..core.logs import setup_logging
    setup_logging()
    controller = args.controller[1:] if args.controller[:1] == ["--"] else args.controller
    from .hold import up_or_hold
    try:
        return up_or_hold(Path(args.config), controller=controller or None)
    except ApplianceError as exc:
        print(f"appliance up: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
