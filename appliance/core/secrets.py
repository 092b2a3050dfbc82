"""Secrets: read once, from files, by the process that needs them; never a child's environment.

A secret has a *name* (``RETAKE_ACCESS_TOKEN``, the names the config gives in
``chat.brain.api_key_env`` and ``chat.brain.headers_env``). Its value is found (:func:`find`,
first match wins) in:

  1. the store `appliance up` hands to its process tree: the file ``NAME`` in
     ``$APPLIANCE_SECRETS_DIR`` (mode 0400, owned by the controller's user, in the private
     runtime folder). When it is set, it is the only place looked at: the tree has exactly the
     secrets it was handed (a rehearsal is handed no access token, whatever is mounted);
  2. the file named by ``NAME_FILE`` (the convention of official images: ``POSTGRES_PASSWORD_FILE``);
  3. the file ``NAME`` in the secrets mount, ``/run/secrets`` (compose's ``secrets:`` and
     ``./secrets`` folder, the files `appliance fleet` mounts, a Kubernetes Secret volume;
     ``APPLIANCE_SECRETS_MOUNT`` moves it);
  4. the environment variable ``NAME`` itself (kept working for a bare host that exports
     ``OPENAI_API_KEY``: `appliance up` reads it once and takes it out of its own environment,
     :func:`scrub_environment`, before any child starts).

A :class:`SecretRef` may name a file of its own instead (a simulcast output's ``key_file``):
then only the store and that file are looked at.

`appliance up` resolves every secret the config names (:func:`collect`), writes them into the
store (:func:`write_store`) and starts the tree with nothing but ``APPLIANCE_SECRETS_DIR``; the
controller reads the store once (:class:`SecretStore`). Every child process gets the
allow-listed environment of :mod:`appliance.core.proc`, which never carries a secret.

This module imports only the standard library and the rest of ``core``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .files import PRIVATE_DIR, ensure_private_dir, write_private

log = logging.getLogger("appliance.secrets")

ENV_STORE = "APPLIANCE_SECRETS_DIR"      # the store `appliance up` hands to the tree
ENV_MOUNT = "APPLIANCE_SECRETS_MOUNT"    # where mounted secret files are (default /run/secrets)
DEFAULT_MOUNT = Path("/run/secrets")
FILE_SUFFIX = "_FILE"
STORE_FILE_MODE = 0o400
MAX_BYTES = 64 * 1024                    # a token, a key, a header value: never more
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_said_missing: set[str] = set()


class Secret:
    """A string that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class SecretRef:
    """A secret the config needs: its name, or (``file``) a file of its own."""

    name: str
    file: Path | None = None
    what: str = ""  # for messages: which setting asks for it ("chat.brain.api_key_env")

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ValueError(f"not a secret name: {self.name!r}")

    def describe(self) -> str:
        return f"{self.name} ({self.what})" if self.what else self.name


@dataclass(frozen=True)
class Found:
    """Where a secret was found (``path`` None: the environment variable)."""

    ref: SecretRef
    value: Secret
    source: str
    path: Path | None = None


def mount_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get(ENV_MOUNT) or DEFAULT_MOUNT)


def read_secret_file(path: Path, ref: SecretRef, source: str = "") -> Secret | None:
    """The secret in ``path`` (surrounding whitespace removed); None when it is empty.
    ConfigError naming the secret and where it was looked for when it cannot be read or is too large."""
    where = f"secret {ref.describe()}, {source or path}"
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read ({exc.strerror})",
                          fix="make the file readable by the appliance (as root it reads it once, then "
                              "drops privileges), or remove the setting that names it") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_BYTES // 1024} KiB", fix="put the secret alone in the file")
    value = data.decode("utf-8", "replace").strip()
    return Secret(value) if value else None


def _file(path: Path, ref: SecretRef, source: str, *, optional: bool) -> Found | None:
    """The secret in ``path``; None when the file is absent (and ``optional``: also when this
    user may not even look, as the appliance's user at a root-only mount) or empty."""
    if optional and not os.path.exists(path):
        return None
    if not os.path.exists(path):
        if str(path) not in _said_missing:  # an optional Kubernetes Secret that is not mounted
            _said_missing.add(str(path))
            log.info("secret %s: %s does not exist (an optional secret not mounted)", ref.describe(), path)
        return None
    value = read_secret_file(path, ref, source)
    return Found(ref, value, source, path) if value else None


def find(ref: SecretRef | str, *, environ: Mapping[str, str] | None = None) -> Found | None:
    """Where ``ref`` is, in the order of the module's docstring; None when nowhere."""
    ref = SecretRef(ref) if isinstance(ref, str) else ref
    environ = os.environ if environ is None else environ
    store = environ.get(ENV_STORE)
    if store:  # the tree's secrets are exactly what `appliance up` (or a rehearsal) handed over
        return _file(Path(store) / ref.name, ref, "the tree's secret store", optional=True)
    if ref.file is not None:
        return _file(Path(ref.file).expanduser(), ref, f"the file {ref.file}", optional=False)
    named = environ.get(ref.name + FILE_SUFFIX)
    if named:
        found = _file(Path(named), ref, f"{ref.name}{FILE_SUFFIX}={named}", optional=False)
        if found:
            return found
    mounted = mount_dir(environ) / ref.name
    found = _file(mounted, ref, f"the secrets mount ({mounted})", optional=True)
    if found:
        return found
    value = environ.get(ref.name, "").strip()
    return Found(ref, Secret(value), f"the environment variable {ref.name}") if value else None


def collect(refs: Iterable[SecretRef], *, environ: Mapping[str, str] | None = None) -> dict[str, Found]:
    """Every secret of ``refs`` that is set somewhere (name -> where); the absent ones are left out."""
    found: dict[str, Found] = {}
    for ref in refs:
        if ref.name not in found:
            hit = find(ref, environ=environ)
            if hit:
                found[ref.name] = hit
    return found


def write_store(folder: Path, secrets: Mapping[str, Secret], *, owner: tuple[int, int] | None = None) -> Path:
    """Write each secret into ``folder`` (mode 0400, one file per name, the folder 0700), owned
    by ``owner`` (uid, gid) when given; a file of an earlier run that is not in ``secrets`` goes."""
    folder = ensure_private_dir(Path(folder), PRIVATE_DIR)
    for stale in folder.iterdir():
        if stale.name not in secrets:
            stale.unlink()
    for name, secret in secrets.items():
        if not NAME.match(name):
            raise ValueError(f"not a secret name: {name!r}")
        path = folder / name
        path.unlink(missing_ok=True)  # mode 0400 cannot be replaced in place by a non-root owner
        write_private(path, secret.reveal() + "\n", mode=STORE_FILE_MODE, dir_mode=None)
        if owner is not None:
            os.chown(path, *owner)
    if owner is not None:
        os.chown(folder, *owner)
    return folder


class SecretStore(Mapping[str, str]):
    """The secrets one process holds, each read once (name -> value).

    Built from :class:`SecretRef` s (:meth:`load`: every one looked up at once, so
    :meth:`values_list` knows them all for the outgoing filter), or filled lazily (:meth:`secret`).
    It is a ``Mapping[str, str]``, so it stands where an environment used to be read for a key."""

    def __init__(self, *, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._values: dict[str, Secret | None] = {}
        self._refs: dict[str, SecretRef] = {}

    @classmethod
    def load(cls, refs: Iterable[SecretRef], *, environ: Mapping[str, str] | None = None) -> SecretStore:
        store = cls(environ=environ)
        for ref in refs:
            store._refs[ref.name] = ref
            store.secret(ref.name)
        return store

    def secret(self, name: str) -> Secret | None:
        """The secret ``name`` (read the first time it is asked for), or None."""
        if name not in self._values:
            ref = self._refs.get(name) or SecretRef(name)
            found = find(ref, environ=self._environ)
            self._values[name] = found.value if found else None
        return self._values[name]

    def values_list(self) -> list[str]:
        """Every secret value known (for the outgoing filter and the pane guard)."""
        return [s.reveal() for s in self._values.values() if s]

    # -- Mapping[str, str] --------------------------------------------------------------------
    def __getitem__(self, name: str) -> str:
        secret = self.secret(name) if NAME.match(name) else None
        if not secret:
            raise KeyError(name)
        return secret.reveal()

    def __iter__(self) -> Iterator[str]:
        return iter([name for name, value in self._values.items() if value])

    def __len__(self) -> int:
        return sum(1 for value in self._values.values() if value)

    def __repr__(self) -> str:
        return f"SecretStore({sorted(self)})"


# -- our own environment -------------------------------------------------------------------------

def _environ_block() -> tuple[int, int] | None:
    """(start, end) addresses of this process's initial environment block: what
    /proc/<pid>/environ shows (fields env_start and env_end of /proc/self/stat)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start, end = int(fields[47]), int(fields[48])  # stat fields 50 and 51
    except (OSError, IndexError, ValueError):
        return None
    return (start, end) if 0 < start < end else None


def scrub_environment(names: Iterable[str], environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Take the variables ``names`` (and their ``NAME_FILE`` twins) out of this process: out of
    ``os.environ`` (so no child can inherit them) and out of the memory that
    ``/proc/<pid>/environ`` shows (zeroed in place, as setproctitle does). Returns what went."""
    environ = os.environ if environ is None else environ
    wanted = {n for name in names for n in (name, name + FILE_SUFFIX)}
    gone = sorted(n for n in wanted if n in environ)
    block = _environ_block()
    if block is not None and gone:
        start, end = block
        data = ctypes.string_at(start, end - start)
        offset = 0
        for entry in data.split(b"\0"):
            key, sep, value = entry.partition(b"=")
            if sep and key.decode("utf-8", "replace") in wanted and value:
                ctypes.memset(start + offset + len(key) + 1, 0, len(value))
            offset += len(entry) + 1
    for name in gone:
        del environ[name]
    return gone
