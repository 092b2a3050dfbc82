"""Where the appliance runs and where it keeps things by default: in the container or not, the
config file and the state folder. Standard library only: the command line reads these before
anything heavy is loaded (`appliance --help` and `appliance probe` stay cheap)."""

from __future__ import annotations

import os
from pathlib import Path

IN_CONTAINER = bool(os.environ.get("APPLIANCE_IN_CONTAINER"))  # set by the Dockerfile
DEFAULT_CONFIG = Path("/config/appliance.yaml") if IN_CONTAINER else Path("appliance.yaml")
DEFAULT_STATE_DIR = Path("/state") if IN_CONTAINER else Path(
    os.environ.get("XDG_STATE_HOME", Path.home() / ".local/state")) / "retake-appliance"
