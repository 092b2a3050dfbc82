"""The agent's retake.tv credentials (reference section 1), and the one resolver of the token.

Stored as JSON with the reference's fields, written atomically (temp file + fsync + rename),
mode 600 in a mode-700 folder. The token is wrapped in :class:`Secret` so it never shows in a
repr or a log.

:func:`resolve_credentials` is the one way every command finds them (``live``, ``register``,
``verify``, ``status``, ``doctor``, ``rehearse``): the token from the secret resolver
(:mod:`appliance.core.secrets`: the tree's store, ``RETAKE_ACCESS_TOKEN_FILE``,
``/run/secrets/RETAKE_ACCESS_TOKEN``, ``RETAKE_ACCESS_TOKEN``; a named file that is not there is
an optional Secret not mounted, i.e. no token), then the credentials file of the config (the
sandbox's own file for a sandbox config, see :meth:`appliance.config.Settings.credentials_path`).
The resolver's token wins over the file's. :func:`without_token_environment` is what a
rehearsal gets instead of the environment: nothing that holds or names the token.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import ConfigError, CredentialsError
from ..core.files import write_json
from ..core.secrets import ENV_STORE, FILE_SUFFIX, Secret, SecretRef, find

if TYPE_CHECKING:
    from ..config import Settings

ENV_TOKEN = "RETAKE_ACCESS_TOKEN"  # noqa: S105 - the name of a variable, not a value
ENV_TOKEN_FILE = ENV_TOKEN + FILE_SUFFIX  # a file holding the token (a Kubernetes Secret volume)
TOKEN_VARIABLES = (ENV_TOKEN, ENV_TOKEN_FILE)
TOKEN = SecretRef(ENV_TOKEN, what="the retake.tv access token")


def token_from_environment(environ: Mapping[str, str] | None = None) -> Secret | None:
    """The access token from the secret resolver (:func:`appliance.core.secrets.find`: the tree's
    store, ``RETAKE_ACCESS_TOKEN_FILE``, ``/run/secrets/RETAKE_ACCESS_TOKEN``, then
    ``RETAKE_ACCESS_TOKEN``), else None.

    A ``RETAKE_ACCESS_TOKEN_FILE`` that does not exist (an optional Secret that is not mounted)
    is no token, said once in the log; one that exists but cannot be read is an error.
    """
    try:
        found = find(TOKEN, environ=environ)
    except ConfigError as exc:
        raise CredentialsError(exc.message, fix=exc.fix) from None
    return found.value if found else None


def without_token_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``environ`` without the variables that hold or name the access token."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if k not in TOKEN_VARIABLES and k != ENV_STORE}


@dataclass(frozen=True)
class Credentials:
    """What ``agent/register`` returned, plus the token fields set after the first stream."""

    access_token: Secret
    agent_name: str
    agent_id: str
    userDbId: str
    wallet_address: str
    ticker: str
    token_address: str = ""
    token_ticker: str = ""
    source: str = field(default="file", compare=False)  # "file" or "env" (where the token came from)

    def to_json(self) -> dict[str, str]:
        data = asdict(self)
        data.pop("source")
        data["access_token"] = self.access_token.reveal()
        return data

    def with_token_info(self, token_address: str, token_ticker: str) -> Credentials:
        return replace(self, token_address=token_address, token_ticker=token_ticker)


_FIELDS = ("access_token", "agent_name", "agent_id", "userDbId", "wallet_address", "ticker")


def save_credentials(path: Path, creds: Credentials) -> None:
    """Write the credentials, mode 600 in a mode-700 folder; never a half-written file."""
    write_json(Path(path).expanduser(), creds.to_json())


def update_token_info(path: Path, token_address: str, token_ticker: str) -> None:
    """Record the token created on the first stream, leaving every other field as it is on disk
    (a token that came from the environment is never written by this)."""
    path = Path(path).expanduser()
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(token_address=token_address, token_ticker=token_ticker)
    write_json(path, data)


def load_credentials(path: Path, *, environ: Mapping[str, str] | None = None) -> Credentials | None:
    """The saved credentials (None when there is no file); the env token wins over the file's."""
    environ = os.environ if environ is None else environ
    path = Path(path).expanduser()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        # Tighten rather than refuse: 600 is what it must be. A file we may not chmod (another
        # user's, a read-only mount) is a clear error naming the fix, never a traceback.
        try:
            os.chmod(path, 0o600)
        except OSError as exc:
            raise CredentialsError(
                f"{path}: readable by other users (mode {stat.S_IMODE(mode):03o}) and cannot be made "
                f"private ({exc.strerror})",
                fix=f"chmod 600 {path} and give it to the user the appliance runs as (in the image, uid 10001: "
                    "the container starts as root and does it itself when it keeps CAP_CHOWN and CAP_FOWNER)") from None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"{path}: unreadable credentials ({exc})",
                               fix="restore it from a backup; do not register again under the same name") from None
    if not isinstance(data, dict):
        raise CredentialsError(f"{path}: credentials must be a JSON object")
    optional = ("access_token", "agent_id")  # empty when the token lives in the environment only
    missing = [k for k in _FIELDS if not isinstance(data.get(k), str) or (k not in optional and not data.get(k))]
    if missing:
        raise CredentialsError(f"{path}: missing or empty {', '.join(missing)}",
                               fix="restore the file that `appliance register` wrote")
    token, source = data["access_token"], "file"
    from_env = token_from_environment(environ)
    if from_env:
        token, source = from_env.reveal(), "env"
    if not token:
        raise CredentialsError(f"{path}: no access_token", fix=f"set {ENV_TOKEN} or restore the file")
    return Credentials(access_token=Secret(token), agent_name=data["agent_name"], agent_id=data["agent_id"],
                       userDbId=data["userDbId"], wallet_address=data["wallet_address"], ticker=data["ticker"],
                       token_address=str(data.get("token_address") or ""),
                       token_ticker=str(data.get("token_ticker") or ""), source=source)


@dataclass(frozen=True)
class ResolvedCredentials:
    """What :func:`resolve_credentials` found for one config."""

    path: Path  # the config's credentials file (it may not exist)
    saved: Credentials | None  # that file, its token replaced by the environment's when one is set
    env_token: Secret | None  # the environment's token, if any

    @property
    def token(self) -> Secret | None:
        return self.saved.access_token if self.saved else self.env_token

    def require_token(self) -> Secret:
        if not self.token:
            raise CredentialsError(f"no credentials: {self.path} does not exist and neither {ENV_TOKEN} nor "
                                   f"{ENV_TOKEN_FILE} gives a token", fix="run `appliance register` first")
        return self.token

    def describe(self) -> str:
        """Where the token comes from, for a log line or doctor (never the token)."""
        if self.saved:
            return f"{self.path}, token from {'the environment' if self.saved.source == 'env' else 'the file'}"
        return "the environment only" if self.env_token else f"none (no {self.path})"


def resolve_credentials(settings: Settings, *, environ: Mapping[str, str] | None = None) -> ResolvedCredentials:
    """The credentials for ``settings``: the environment's token, then the config's credentials
    file (see the module's docstring). ``environ`` defaults to the process environment."""
    path = settings.credentials_path()
    return ResolvedCredentials(path=path, saved=load_credentials(path, environ=environ),
                               env_token=token_from_environment(environ))
