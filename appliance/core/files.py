"""Files the appliance keeps: the one atomic writer, and the one owner of the state folder's layout.

:func:`write_private` is the only way a file of the state folder (credentials, ``state.json``,
``control.json``, the skill cache, the sandbox's agents) is written: a temp file in the same
folder, mode set before any byte is written, fsync, rename over the target, fsync of the
folder. A crash leaves either the old file or the new one, never half of one, and a secret is
never readable by anyone else, not even for an instant.

:class:`StateLayout` names every path under ``paths.state_dir``; nothing else spells them.

This module imports only the standard library, so every layer (the sandbox included) may use it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def ensure_private_dir(folder: Path, mode: int = PRIVATE_DIR) -> Path:
    """Create ``folder`` (and parents) and set its mode; returns it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True, mode=mode)
    os.chmod(folder, mode)
    return folder


def write_private(path: Path, data: str | bytes, *, mode: int = PRIVATE_FILE,
                  dir_mode: int | None = PRIVATE_DIR) -> None:
    """Atomically replace ``path`` with ``data`` (text is UTF-8), the file at ``mode`` from its
    first byte; its folder is created (and set to ``dir_mode`` unless that is None)."""
    path = Path(path)
    if dir_mode is None:
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        ensure_private_dir(path.parent, dir_mode)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json(path: Path, data: Any, *, mode: int = PRIVATE_FILE,
               dir_mode: int | None = PRIVATE_DIR) -> None:
    """:func:`write_private` of ``data`` as indented JSON with a final newline."""
    write_private(path, json.dumps(data, indent=1) + "\n", mode=mode, dir_mode=dir_mode)


def keep_corrupt(path: Path) -> Path:
    """Move a file we cannot use aside as ``<name>.corrupt`` (replacing an older one), so the
    appliance can start fresh without losing the evidence; returns the new path."""
    path = Path(path)
    kept = path.with_name(path.name + ".corrupt")
    os.replace(path, kept)
    return kept


@dataclass(frozen=True)
class StateLayout:
    """Every path of the state folder (``paths.state_dir``; ``/state`` in the container)."""

    root: Path

    @property
    def state_json(self) -> Path:
        """Stream count, restart budget, chat cursor, last stats (:mod:`appliance.core.store`)."""
        return self.root / "state.json"

    @property
    def control_json(self) -> Path:
        """Where the running appliance is: its control API's URL and bearer token, its display
        (mode 600; :mod:`appliance.control.where`)."""
        return self.root / "control.json"

    @property
    def credentials(self) -> Path:
        """Credentials in the container (outside it: ``~/.config/retake/credentials.json``)."""
        return self.root / "credentials.json"

    @property
    def sandbox_credentials(self) -> Path:
        """Credentials issued by a sandbox: never over (or mistaken for) the real ones."""
        return self.root / "sandbox" / "credentials.json"

    @property
    def content_log(self) -> Path:
        """What the content window shows (``overlay.content_log`` overrides)."""
        return self.root / "stream.log"

    @property
    def notifications(self) -> Path:
        """One JSON line per operator notification (``notify.file`` overrides)."""
        return self.root / "notifications.log"

    @property
    def skill_dir(self) -> Path:
        """The cached ``skill.json`` and ``skill.md``."""
        return self.root / "skill"

    @property
    def rehearsal(self) -> Path:
        """Everything of `appliance rehearse` (its own credentials, state and recordings)."""
        return self.root / "rehearsal"

    @property
    def memory_db(self) -> Path:
        """SQLite (WAL): viewer memory and the chat journal (what was read, what was answered)."""
        return self.root / "memory.sqlite3"

    @property
    def rehearsal_config(self) -> Path:
        """The config a rehearsal runs with: the user's, pointed at the sandbox."""
        return self.rehearsal / "appliance.yaml"

    @property
    def rehearsal_credentials(self) -> Path:
        """The agent the rehearsal registers in its sandbox."""
        return self.rehearsal / "credentials.json"

    @property
    def rehearsal_state(self) -> Path:
        """The rehearsal appliance's own state folder (a :class:`StateLayout` of its own)."""
        return self.rehearsal / "state"

    @property
    def rehearsal_recordings(self) -> Path:
        """Where the rehearsal's sandbox ingest records the stream (``.flv``)."""
        return self.rehearsal / "recordings"

    @property
    def cache(self) -> Path:
        """Regenerable files (synthesised speech, ...): safe to delete."""
        return self.root / "cache"

    def contains(self, path: Path) -> bool:
        """True when ``path`` is the state folder or inside it (symlinks resolved)."""
        root = self.root.expanduser().resolve()
        target = Path(path).expanduser().resolve()
        return target == root or root in target.parents


@dataclass(frozen=True)
class RuntimeLayout:
    """Every path of the process tree's private (mode 700) runtime folder (`appliance up`)."""

    root: Path

    @property
    def secrets(self) -> Path:
        """The secrets `appliance up` hands to the tree (``APPLIANCE_SECRETS_DIR``): one file per
        name, mode 0400, owned by the controller's user (:mod:`appliance.core.secrets`)."""
        return self.root / "secrets"

    @property
    def xauthority(self) -> Path:
        """The X display's cookie (mode 600): only the tree's X clients may open the display."""
        return self.root / "Xauthority"

    @property
    def supervisor_socket(self) -> Path:
        return self.root / "supervisor.sock"

    @property
    def controller_exit(self) -> Path:
        """The controller's exit status, written by scripts/on-controller-exit.py."""
        return self.root / "controller.exit"

    @property
    def pulse_socket(self) -> Path:
        return self.root / "pulse" / "native"

    @property
    def terminal_socket(self) -> Path:
        """The on-screen terminal's tmux server (scripts/start-terminal.sh, media/terminal.py)."""
        return self.root / "terminal.sock"

    @property
    def shell_dir(self) -> Path:
        """The on-screen shell's own folder, beside this one (never inside it): the shell user's,
        which the controller's group may enter to attach (appliance/up/privileges.py)."""
        return self.root.parent / f"{self.root.name}-shell"

    @property
    def shell_socket(self) -> Path:
        """The shell session's dtach socket (scripts/start-shell.sh); the shell pane attaches to it."""
        return self.shell_dir / "shell.sock"

    @property
    def shell_programs(self) -> Path:
        """Copies of the shell session's scripts (root's, readable by all), run by the shell user
        from here: the checkout may sit where that user cannot reach (``/root/...``)."""
        return self.shell_dir / "bin"

    @property
    def shell_workspace(self) -> Path:
        """The shell's working folder when ``terminal.workspace`` is not set (gone with the tree)."""
        return self.shell_dir / "workspace"


def xauthority_entry(display_number: int, cookie: bytes) -> bytes:
    """One Xauthority record (the format libXau reads): an MIT-MAGIC-COOKIE-1 for display
    ``display_number`` on any address (FamilyWild), which Xvfb's ``-auth FILE`` also loads."""
    def field(data: bytes) -> bytes:
        return len(data).to_bytes(2, "big") + data
    return (b"\xff\xff" + field(b"") + field(str(display_number).encode("ascii"))
            + field(b"MIT-MAGIC-COOKIE-1") + field(cookie))
