"""The users of the process tree: the controller's, and the on-screen shell's (a second one).

Everything of the appliance runs as the *controller's user* (``APPLIANCE_USER``: ``appliance``,
uid 10001, in the image; on a bare host whoever runs `appliance up`). The shell that viewers
watch on stream, and anything typed into it, runs as the *shell user* (``APPLIANCE_SHELL_USER``,
default ``appliance-shell``): it cannot read the state folder, the runtime folder, the secrets,
nor the controller's ``/proc/<pid>/environ``. Switching users needs root, so the shell is on
only when the appliance starts as root (the image's default; a bare host's `sudo appliance up`)
and that user exists (the image has it; ``scripts/setup.sh`` creates it as root). Otherwise it
is off, with the reason shown on the pane (:func:`shell_access`), never silently insecure.

This module imports only the standard library and the rest of ``core``.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

ENV_USER = "APPLIANCE_USER"              # the controller's user (the image sets appliance)
ENV_SHELL_USER = "APPLIANCE_SHELL_USER"  # the on-screen shell's user
DEFAULT_SHELL_USER = "appliance-shell"
PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Account:
    """One Unix user: name, ids, home, and every group it is in."""

    name: str
    uid: int
    gid: int
    home: Path
    groups: tuple[int, ...]

    @classmethod
    def from_pwd(cls, entry: pwd.struct_passwd) -> Account:
        groups = tuple(sorted(set(os.getgrouplist(entry.pw_name, entry.pw_gid))))
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), groups)

    @property
    def ids(self) -> tuple[int, int]:
        return self.uid, self.gid

    def describe(self) -> str:
        return f"{self.name} (uid {self.uid})"


def lookup(user: str | int) -> Account | None:
    """The account named (or numbered) ``user``; None when there is none."""
    try:
        entry = pwd.getpwuid(user) if isinstance(user, int) else pwd.getpwnam(user)
    except KeyError:
        return None
    return Account.from_pwd(entry)


def current() -> Account:
    """Whoever this process runs as (its effective uid)."""
    account = lookup(os.geteuid())
    if account is None:  # a container started with a uid that is not in /etc/passwd
        return Account(str(os.geteuid()), os.geteuid(), os.getegid(), Path(os.environ.get("HOME", "/")),
                       tuple(sorted({os.getegid(), *os.getgroups()})))
    return account


def privileged() -> bool:
    """True when we may switch users (root)."""
    return os.geteuid() == 0


def controller_account(environ: Mapping[str, str] | None = None) -> Account:
    """The controller's user: ``APPLIANCE_USER`` when we are root (the image), else whoever we are."""
    environ = os.environ if environ is None else environ
    name = environ.get(ENV_USER, "").strip()
    me = current()
    if not name or not privileged():
        return me
    account = lookup(name)
    if account is None:
        raise ConfigError(f"{ENV_USER}={name}: no such user",
                          fix="create it (the image has `appliance`), or unset the variable")
    return account


@dataclass(frozen=True)
class ShellAccess:
    """The on-screen shell's user, or why the shell is off (``reason``)."""

    account: Account | None
    reason: str = ""

    @property
    def on(self) -> bool:
        return self.account is not None


def shell_access(controller: Account, environ: Mapping[str, str] | None = None) -> ShellAccess:
    """Whether the on-screen shell can run as a second user, and as whom; else why not."""
    environ = os.environ if environ is None else environ
    name = environ.get(ENV_SHELL_USER, DEFAULT_SHELL_USER).strip()
    if not name:
        return ShellAccess(None, f"{ENV_SHELL_USER} is empty (the shell is switched off)")
    account = lookup(name)
    if account is None:
        return ShellAccess(None, f"no user {name} on this machine (as root, scripts/setup.sh creates it)")
    if account.uid in (0, controller.uid):
        return ShellAccess(None, f"{name} is root or the appliance's own user: the shell would see every secret")
    if controller.gid in account.groups:
        return ShellAccess(None, f"{name} is in the appliance's group {controller.gid}: it could read its files")
    if not privileged():
        me = current()
        return ShellAccess(None, f"the appliance runs as {me.describe()}, not root, so it cannot start the shell "
                                 f"as {name} (start `appliance up` as root, or use the image)")
    return ShellAccess(account)


def drop_privileges(account: Account) -> None:
    """Become ``account`` for good (groups, gid, uid; real, effective and saved): a process that
    started as root keeps nothing of it. Nothing to do when we are it already."""
    if os.geteuid() == account.uid and os.getuid() == account.uid and os.getegid() == account.gid:
        return
    os.setgroups(list(account.groups))
    os.setresgid(account.gid, account.gid, account.gid)
    os.setresuid(account.uid, account.uid, account.uid)
    os.environ.update(HOME=str(account.home), USER=account.name, LOGNAME=account.name)


# reads one byte of a file, or lists a folder: exit 0 when it could, 1 when it could not
_READ_PROBE = 'if [ -d "$1" ]; then ls -- "$1"; else head -c 1 -- "$1"; fi >/dev/null 2>&1 || exit 1'


def can_read(account: Account, path: Path) -> bool:
    """Whether ``account`` can read ``path`` (list it, for a folder): asked of a child process
    running as that user (/bin/sh: any user can run it), so permissions, groups, ACLs and mounts
    all count as they would. A probe that cannot run at all is an error, never a "no"."""
    from .proc import run
    try:
        result = run(["/bin/sh", "-c", _READ_PROBE, "sh", str(path)], user=account.uid, group=account.gid,
                     extra_groups=list(account.groups), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, timeout=PROBE_TIMEOUT_S, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"cannot check what {account.describe()} may read ({exc})",
                          fix="the appliance needs /bin/sh, ls and head") from None
    if result.returncode not in (0, 1):
        raise ConfigError(f"cannot check what {account.describe()} may read (the probe ended {result.returncode})",
                          fix="the appliance needs /bin/sh, ls and head")
    return result.returncode == 0


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
