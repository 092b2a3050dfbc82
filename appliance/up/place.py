"""Where one appliance sits on its host: its X display, its control port, its state volume.

Several appliances share one bare host (or one network namespace) only if each has its own
display and control port. ``stream.display: auto`` and ``control.port: 0`` (the defaults) are
*unpinned*: `appliance up` chooses a free one at start. A pinned value that is taken is a
:class:`ConfigError` naming the key, raised before anything starts. What was chosen is written
to ``<state>/control.json`` (:mod:`appliance.control.where`), where the CLI, the probes
(`appliance probe`) and the tests find it, and into a resolved copy of the config in the
tree's private runtime folder that the controller reads.

In a container the state must be on a volume: a ``paths.state_dir`` on the container's own
filesystem would lose the one-time credentials and the chat cursor with the container, so it
is a start-up error (:func:`check_state_on_volume`).
"""

from __future__ import annotations

import errno
import os
import re
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import ApplianceError, ConfigError
from ..core.files import write_private
from ..core.net import free_port
from ..core.paths import DEFAULT_STATE_DIR, IN_CONTAINER
from ..media.display import X_LOCK, display_number, display_taken, free_display, reserve_display

if TYPE_CHECKING:
    from ..config import Settings

AUTO_DISPLAY = "auto"
DISPLAY_CANDIDATES = range(90, 290)  # where an unpinned display is looked for


# -- display and control port ----------------------------------------------------------------

def choose_display(setting: str, *, candidates: Iterable[int] = DISPLAY_CANDIDATES) -> str:
    """``auto``: the first free display among ``candidates``; a pinned ``:N``: itself, or a
    ConfigError naming ``stream.display`` when another X server (or its lock, or another
    appliance starting) has it."""
    if setting == AUTO_DISPLAY:
        for number in candidates:
            if not display_taken(number) and reserve_display(number):
                return f":{number}"
        return free_display([])  # raises: no free display, with its fix
    number = display_number(setting)
    if display_taken(number) or not reserve_display(number):
        raise ConfigError(f"stream.display: {setting} is taken (another X server, or its lock "
                          f"{X_LOCK.format(number)}, is there)",
                          fix="set stream.display: auto (a free one is chosen at start) or another :N")
    return setting


def port_taken(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def choose_control_port(setting: int) -> int:
    """``0``: a free port; a pinned one: itself, or a ConfigError naming ``control.port``."""
    if setting == 0:
        return free_port()
    if port_taken(setting):
        raise ConfigError(f"control.port: {setting} on 127.0.0.1 is taken by another process",
                          fix="set control.port: 0 (a free one is chosen at start) or another port")
    return setting


def check_pinned(settings: Settings) -> None:
    """ConfigError naming the key when a pinned display or control port is taken."""
    if settings.stream.display != AUTO_DISPLAY:
        choose_display(settings.stream.display)
    if settings.control.port:
        choose_control_port(settings.control.port)


def display_for_live(settings: Settings, environ: Mapping[str, str] = os.environ) -> Settings:
    """`appliance live` without `appliance up` (which chooses the display): ``stream.display:
    auto`` means the display of its environment (``DISPLAY``)."""
    if settings.stream.display != AUTO_DISPLAY:
        return settings
    display = environ.get("DISPLAY", "")
    if not re.fullmatch(r":[0-9]+(\.[0-9]+)?", display):
        raise ConfigError("stream.display: auto is chosen by `appliance up`; `appliance live` alone needs "
                          f"DISPLAY=:N in its environment (it is {display!r})",
                          fix="set DISPLAY, or pin stream.display: \":99\"")
    stream = settings.stream.model_copy(update={"display": display})
    return settings.model_copy(update={"stream": stream})


def _absolute(value: Any) -> Any:
    return str(Path(value).expanduser().resolve()) if value else value


def place(settings: Settings, *, runtime_dir: Path) -> tuple[Path, Settings]:
    """Choose the display and the control port, check pinned ones, and write the resolved
    config (every path absolute, since the controller runs in another folder) to the private
    runtime folder. Returns its path and the resolved settings."""
    display = choose_display(settings.stream.display)
    port = choose_control_port(settings.control.port)
    data = settings.model_dump(mode="json", exclude_none=True)
    data["stream"]["display"] = display
    data["control"]["port"] = port
    data["paths"]["state_dir"] = _absolute(data["paths"]["state_dir"])
    if data["paths"].get("credentials"):
        data["paths"]["credentials"] = _absolute(data["paths"]["credentials"])
    for section, key in (("overlay", "content_log"), ("overlay", "watch_dir"), ("notify", "file"), ("scene", "dir")):
        if data[section].get(key):
            data[section][key] = _absolute(data[section][key])
    if data["voice"].get("music"):
        data["voice"]["music"]["file"] = _absolute(data["voice"]["music"]["file"])
    for output in data["simulcast"]["outputs"]:
        output["key_file"] = _absolute(output["key_file"])
    path = runtime_dir / "appliance.yaml"
    import yaml

    from ..config import parse_config
    write_private(path, yaml.safe_dump(data, sort_keys=False))
    return path, parse_config(data, str(path))


# -- the container's state volume -------------------------------------------------------------

def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape") if "\\" in field else field


def mount_points(mountinfo: str) -> list[str]:
    """Mount points listed in /proc/self/mountinfo text (field 5, octal escapes decoded)."""
    points = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4:
            points.append(_unescape(fields[4]))
    return points


def volume_of(path: Path, mountinfo: str) -> str:
    """The mount point ``path`` lives on ("/" for the container's own filesystem)."""
    target = Path(path).expanduser().resolve()
    best = "/"
    for point in mount_points(mountinfo):
        mount = Path(point)
        if (mount == target or mount in target.parents) and len(point) > len(best):
            best = point
    return best


def check_state_on_volume(settings: Settings, *, in_container: bool = IN_CONTAINER,
                          mountinfo: str | None = None) -> None:
    """In a container: ConfigError naming ``paths.state_dir`` unless it is on a mounted volume."""
    if not in_container:
        return
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text(encoding="utf-8")
    state_dir = settings.state_dir
    if volume_of(state_dir, mountinfo) == "/":
        raise ConfigError(
            f"paths.state_dir: {state_dir} is inside the container, not on a volume: credentials "
            "(the one-time token) and the chat cursor would be lost with the container",
            fix=f"remove paths.state_dir from the config (in the container it is {DEFAULT_STATE_DIR}, "
                "the state volume) or mount a volume there")


# -- what a probe or a held appliance reads of a config that may not load ------------------------

def raw_setting(config: Path, section: str, key: str) -> Any:
    """``section.key`` from a config file that may not validate (None when absent/unreadable)."""
    import yaml
    try:
        data = yaml.safe_load(Path(config).read_text(encoding="utf-8"))
        return ((data or {}).get(section) or {}).get(key)
    except (OSError, AttributeError, yaml.YAMLError):
        return None


def probe_state_dir(config: Path) -> Path:
    """Which state folder a probe (or a held appliance) uses: the config's when it loads, else
    its ``paths.state_dir`` as written, else the default (``/state`` in the container).

    A probe runs every few seconds in every pod: the YAML alone is read (the whole config is
    validated only in the container, and only when it names a state folder of its own)."""
    raw = raw_setting(config, "paths", "state_dir")
    if not isinstance(raw, str) or not raw:
        return DEFAULT_STATE_DIR
    if not IN_CONTAINER:
        return Path(raw).expanduser()
    from ..config import load_config
    try:
        return load_config(config).state_dir
    except ApplianceError:
        return DEFAULT_STATE_DIR  # a read-only root: a held appliance writes to the volume
