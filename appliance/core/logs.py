"""One log line format for every process of the appliance (the shell scripts use the same)."""

from __future__ import annotations

import logging
import os
import sys
import time

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


class _UTCFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))


def setup_logging(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose or os.environ.get("APPLIANCE_DEBUG") else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_UTCFormatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "engineio", "socketio", "aiohttp.access", "watchdog", "mcp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
