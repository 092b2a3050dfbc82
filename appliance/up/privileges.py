"""Start as root only as long as needed, then every program runs as its own user.

What the official postgres and redis images do, for the appliance's two users
(:mod:`appliance.core.users`): when `appliance up` (or `appliance rehearse`) starts as root —
the image's default, or ``sudo`` on a bare host — it

1. gives the state folder to the controller's user (:func:`give_state`): what is not its own
   becomes its own, the folder is mode 0700 and nothing inside keeps a group or other bit, so a
   bind-mounted ``./state`` owned by root with a ``credentials.json`` of mode 666 just works;
2. checks every file a secret was read from (:func:`check_secret_files`): the shell user must not
   be able to read it; a secrets mount is made 0700 when it can be;
3. gives the runtime folder (the secret store, the X cookie, the sockets) to the controller's
   user and makes the shell's own folder (:func:`prepare_runtime`), then starts supervisord,
   which stays root only to start each program as its user (``user=`` in ``conf.d/*.conf``): the
   shell as the shell user, everything else as the controller's user.

A step that cannot be done (a read-only or foreign-owned state volume, a capability taken away,
a secret file the shell user could read) is a :class:`~appliance.core.errors.ConfigError`
naming the fix: `appliance up` holds (alive, unready, ``/status`` saying what to do), it never
prints a traceback. Without root nothing here changes owners; the state folder is still made
0700 when it is ours, and the shell is off (:func:`appliance.core.users.shell_access`).
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ConfigError
from ..core.secrets import Found, mount_dir
from ..core.users import (
    Account,
    ShellAccess,
    can_read,
    controller_account,
    current,
    lookup,
    privileged,
    shell_access,
)

log = logging.getLogger("appliance.up.privileges")

SHELL_SCRIPTS = ("start-shell.sh", "shell-loop.sh", "lib.sh")  # what the shell user runs (scripts/)
SHELL_DIR_MODE = 0o2750   # the shell user's; the controller's group may enter (to attach), setgid
WORKSPACE_MODE = 0o700
# what `appliance up` tells the tree (conf.d/*.conf: user=; scripts/start-shell.sh, shell-pane.sh)
ENV_RUN_AS = "APPLIANCE_RUN_AS"                  # every program but the shell
ENV_SHELL_RUN_AS = "APPLIANCE_SHELL_RUN_AS"      # the shell program (the controller's user when off)
ENV_SHELL_OFF = "APPLIANCE_SHELL_OFF"            # why the shell is off ("" when on)
ENV_SUPERVISOR_USER = "APPLIANCE_SUPERVISOR_USER"  # supervisord itself: whoever starts it


@dataclass(frozen=True)
class TreeUsers:
    """Who runs what in one process tree."""

    controller: Account
    shell: ShellAccess

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> TreeUsers:
        """From ``APPLIANCE_USER`` / ``APPLIANCE_SHELL_USER`` (the image sets both) and whether we are root."""
        controller = controller_account(environ)
        return cls(controller, shell_access(controller, environ))

    @classmethod
    def from_tree(cls, env: Mapping[str, str]) -> TreeUsers:
        """Back from a tree's environment (:meth:`environment`)."""
        controller = lookup(env.get(ENV_RUN_AS, "")) or current()
        off = env.get(ENV_SHELL_OFF, "")
        account = None if off else lookup(env.get(ENV_SHELL_RUN_AS, ""))
        reason = off or ("" if account else "no shell user in the tree's environment")
        return cls(controller, ShellAccess(account, reason))

    def environment(self) -> dict[str, str]:
        shell = self.shell.account
        return {ENV_RUN_AS: self.controller.name, ENV_SHELL_RUN_AS: (shell or self.controller).name,
                ENV_SHELL_OFF: self.shell.reason, ENV_SUPERVISOR_USER: current().name,
                "HOME": str(self.controller.home)}


def _walk(root: Path) -> Iterable[Path]:
    """``root`` and everything under it, without following symlinks."""
    yield root
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            yield Path(folder) / name


def _state_fix(state_dir: Path, users: TreeUsers) -> str:
    return (f"give it to the appliance's user on the host: `sudo chown -R {users.controller.uid}:"
            f"{users.controller.gid} <the folder mounted at {state_dir}>` (and `chmod 700` it), or let the "
            "container keep CAP_CHOWN, CAP_FOWNER and CAP_DAC_OVERRIDE (compose.yaml's cap_add)")


def give_state(state_dir: Path, users: TreeUsers) -> None:
    """Make ``state_dir`` the controller's alone (see the module's docstring, step 1).

    ConfigError naming the fix when it cannot be done or, after it, the shell user could
    still read it."""
    state_dir = Path(state_dir).expanduser()
    owner = users.controller
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for path in _walk(state_dir):
            info = path.lstat()
            if privileged() and (info.st_uid, info.st_gid) != owner.ids:
                os.lchown(path, *owner.ids)
            if not stat.S_ISLNK(info.st_mode):
                mode = stat.S_IMODE(info.st_mode)
                wanted = 0o700 if path == state_dir else mode & ~0o077
                if mode != wanted:
                    os.chmod(path, wanted)
    except OSError as exc:
        where = exc.filename or state_dir
        raise ConfigError(f"paths.state_dir: {state_dir}: cannot be made private to {owner.describe()} "
                          f"({where}: {exc.strerror})", fix=_state_fix(state_dir, users)) from None
    if users.shell.account is not None and can_read(users.shell.account, state_dir):
        raise ConfigError(f"paths.state_dir: {state_dir} can still be read by the shell user "
                          f"{users.shell.account.describe()}", fix=_state_fix(state_dir, users))
    if state_dir.stat().st_uid != owner.uid:
        raise ConfigError(f"paths.state_dir: {state_dir} is not owned by {owner.describe()}",
                          fix=_state_fix(state_dir, users))


def check_secret_files(found: Mapping[str, Found], users: TreeUsers, environ: Mapping[str, str] | None = None,
                       *, credentials: Path | None = None) -> None:
    """No file a secret came from, nor the credentials file, may be readable by the shell user
    (step 2). The secrets mount (``/run/secrets``) is made 0700 when we may (a tmpfs, or a
    folder we own); a file that stays readable is a ConfigError naming the fix."""
    shell = users.shell.account
    if shell is None:
        return
    mount = mount_dir(environ)
    files = [(hit.ref.describe(), hit.path) for hit in found.values() if hit.path is not None]
    if credentials is not None and credentials.exists():
        files.append(("the credentials file", credentials))
    try:  # only root may enter the mount (compose's ./secrets folder keeps the host's mode)
        if privileged() and stat.S_IMODE(mount.stat().st_mode) & 0o077:
            os.chmod(mount, 0o700)
    except OSError:
        pass  # none, or a read-only mount: the files' own modes decide, checked below
    for what, path in files:
        if can_read(shell, path):
            raise ConfigError(
                f"secret {what}: {path} can be read by the shell user {shell.describe()}",
                fix="make it private where it comes from: `chmod 600` the file on the host (compose mounts "
                    "it with the host's mode) or `chmod 700` its folder; a Kubernetes Secret: defaultMode 0400")


def give(path: Path, account: Account) -> None:
    """``path`` (and what is under it) to ``account``, when we are root."""
    if not privileged() or not Path(path).exists():
        return
    for item in _walk(Path(path)):
        os.lchown(item, *account.ids)


def fresh_folder(folder: Path) -> None:
    """Make ``folder`` anew (mode 0700): whatever was there (a stale run's, or something planted
    beside a runtime folder in a shared /tmp) is removed first, links never followed."""
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(mode=0o700)  # fails if someone raced us to it: better no shell than theirs


def prepare_runtime(runtime_dir: Path, shell_dir: Path, workspace: Path, users: TreeUsers, *,
                    scripts: Path, programs: Path) -> None:
    """The runtime folder to the controller's user; the shell's folder (its socket), made anew,
    to the shell user with the controller's group allowed in, and its workspace (step 3). The
    shell's folder is beside the runtime folder, so their parent must let the shell user pass
    (``/tmp`` does; a folder of mode 0711 does). The shell session's scripts are copied from
    ``scripts`` into ``programs`` inside it (root's, mode 0755): the shell user runs them from
    there, whether or not it could reach the checkout (a clone in ``/root`` it cannot)."""
    give(runtime_dir, users.controller)
    shell = users.shell.account
    if shell is None:
        return
    fresh_folder(shell_dir)
    programs.mkdir()
    # scripts the shell user runs: nothing secret in them, and root's, so not its to change
    os.chmod(programs, 0o755)  # noqa: S103
    for name in SHELL_SCRIPTS:
        shutil.copyfile(scripts / name, programs / name)
        os.chmod(programs / name, 0o755)  # noqa: S103
    os.chown(shell_dir, shell.uid, users.controller.gid)
    # the setgid bit (so the socket's group is the controller's) is kept only when the folder's
    # group is ours (or with CAP_FSETID, which the container does not keep): ours for a moment
    before = os.getegid()
    os.setegid(users.controller.gid)
    try:
        os.chmod(shell_dir, SHELL_DIR_MODE)
    finally:
        os.setegid(before)
    if stat.S_IMODE(shell_dir.stat().st_mode) != SHELL_DIR_MODE:
        raise ConfigError(f"{shell_dir}: mode {stat.S_IMODE(shell_dir.stat().st_mode):o}, not {SHELL_DIR_MODE:o}",
                          fix="the temp folder must allow setgid folders (a nosuid mount still does)")
    workspace.mkdir(parents=True, exist_ok=True, mode=WORKSPACE_MODE)
    if workspace.stat().st_uid != shell.uid:
        give(workspace, shell)
    os.chmod(workspace, WORKSPACE_MODE)


def become_controller(config: Path, *, secrets: bool = False) -> None:
    """A command started as root in the image (``docker exec``, ``docker compose run``) becomes
    the controller's user before it does anything: first the state folder is given to that
    user, and (``secrets``) the secrets the config names are read while still root (a root-only
    mount) into a private store for this one command, removed when it exits. Nothing to do when
    we are not root or are that user."""
    import atexit
    import tempfile

    from ..config import load_config
    from ..core.errors import ApplianceError
    from ..core.secrets import ENV_STORE, collect, write_store
    from ..core.users import drop_privileges

    users = TreeUsers.from_environment()
    if not privileged() or users.controller.uid == os.geteuid():
        return
    try:
        settings = load_config(config)
    except ApplianceError:
        settings = None  # the command reports the bad config itself, as the controller's user
    if settings is not None:
        give_state(settings.state_dir, users)
    if settings is not None and secrets:
        found = collect(settings.secret_refs())
        if found:
            store = Path(tempfile.mkdtemp(prefix="appliance-cli-"))
            write_store(store / "secrets", {name: hit.value for name, hit in found.items()}, owner=users.controller.ids)
            give(store, users.controller)
            os.environ[ENV_STORE] = str(store / "secrets")
            atexit.register(shutil.rmtree, store, True)
    drop_privileges(users.controller)
