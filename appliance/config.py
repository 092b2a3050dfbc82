"""The appliance's YAML config, validated at load with pydantic v2.

Each capability's model lives beside it (``<package>/settings.py``); here they are composed into
:class:`Settings`. Unknown keys are errors, every
field has a default except the agent profile, and a bad file is reported as
``<file>: agent.ticker: at most 10 characters`` (see :func:`load_config`).
Secrets never live here: the config names them (:meth:`Settings.secret_refs`) and
:mod:`appliance.core.secrets` finds them (files, or the environment on a bare host).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from .chat.settings import ChatConfig
from .control.settings import ControlConfig
from .core.errors import ConfigError
from .core.files import StateLayout
from .core.paths import DEFAULT_STATE_DIR, IN_CONTAINER
from .core.secrets import SecretRef
from .core.settings import SettingsModel, validation_problems, yaml_problem
from .fleet.settings import DeployConfig
from .live.settings import LiveConfig, NotifyConfig, RecoveryConfig
from .media.settings import OverlayConfig, SimulcastConfig, StreamConfig, TerminalConfig
from .retake.credentials import TOKEN
from .retake.settings import AgentConfig, RetakeConfig
from .scene.settings import SceneConfig
from .voice.settings import EspeakVoiceConfig, VoiceConfig

IMAGE_OVERLAYS = Path("/opt/appliance/overlays")  # where compose mounts the repo's overlays/


def builtin_overlays() -> Path:
    """The built-in scene templates and the default feed folder (never inside the state
    folder): ``$APPLIANCE_HOME/overlays`` when set; else ``/opt/appliance/overlays`` when it is
    there (compose mounts the repo's ``overlays/`` there, so edits are live in the container);
    else the package's own copy (``appliance/tree/overlays``, put into the wheel by setup.py);
    else the checkout's ``overlays/`` (development, editable installs)."""
    home = os.environ.get("APPLIANCE_HOME")
    if home:
        return Path(home) / "overlays"
    package = Path(__file__).resolve().parent
    for folder in (IMAGE_OVERLAYS, package / "tree" / "overlays"):
        if folder.is_dir():
            return folder
    return package.parent / "overlays"


class PathsConfig(SettingsModel):
    """Where secrets and state live (a volume in the container)."""

    credentials: Path | None = None  # default: ~/.config/retake/credentials.json or /state/...
    state_dir: Path = DEFAULT_STATE_DIR

    def credentials_path(self) -> Path:
        if self.credentials is not None:
            return self.credentials.expanduser()
        if IN_CONTAINER:
            return StateLayout(self.state_dir).credentials
        return Path.home() / ".config/retake/credentials.json"


class Settings(SettingsModel):
    """The whole config file."""

    agent: AgentConfig
    retake: RetakeConfig = Field(default_factory=RetakeConfig)
    paths: PathsConfig = Field(default_factory=PathsConfig)
    auto_register: bool = False  # register on `live` when no credentials exist
    stream: StreamConfig = Field(default_factory=StreamConfig)
    voice: VoiceConfig = Field(default_factory=EspeakVoiceConfig)
    overlay: OverlayConfig = Field(default_factory=OverlayConfig)
    scene: SceneConfig = Field(default_factory=SceneConfig)
    chat: ChatConfig = Field(default_factory=ChatConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    control: ControlConfig = Field(default_factory=ControlConfig)
    terminal: TerminalConfig = Field(default_factory=TerminalConfig)
    recovery: RecoveryConfig = Field(default_factory=RecoveryConfig)
    live: LiveConfig = Field(default_factory=LiveConfig)
    simulcast: SimulcastConfig = Field(default_factory=SimulcastConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        # `notify:` with everything commented out reads as null: it means "all defaults"
        if isinstance(data, dict):
            data = {k: ({} if v is None and k != "agent" else v) for k, v in data.items()}
            if isinstance(data.get("voice"), dict) and "engine" not in data["voice"]:
                data["voice"] = {"engine": "espeak", **data["voice"]}  # the default engine
        return data

    @property
    def state_dir(self) -> Path:
        return self.paths.state_dir.expanduser()

    @property
    def layout(self) -> StateLayout:
        """Every path of the state folder."""
        return StateLayout(self.state_dir)

    def content_log(self) -> Path:
        return self.overlay.content_log or self.layout.content_log

    def credentials_path(self) -> Path:
        """paths.credentials if set; for a sandbox its own file beside the state, so sandbox
        credentials never overwrite (or get mistaken for) the real ones."""
        if self.paths.credentials is None and self.retake.sandbox:
            return self.layout.sandbox_credentials
        return self.paths.credentials_path()

    def overlay_dir(self) -> Path:
        """The feed folder: ``overlay.watch_dir``, default the repo's (the image's) overlays/."""
        return (self.overlay.watch_dir or builtin_overlays()).expanduser()

    def scene_dir(self) -> Path:
        """Where the scene templates are: ``scene.dir``, default the repo's overlays/."""
        return (self.scene.dir or builtin_overlays()).expanduser()

    def notify_file(self) -> Path:
        return self.notify.file or self.layout.notifications

    def stream_url(self) -> str:
        return f"https://retake.tv/{self.agent.name}"

    def secret_refs(self) -> list[SecretRef]:
        """Every secret this config names (:mod:`appliance.core.secrets`): the access token, the
        LLM key, the webhook brain's header values, the simulcast stream keys."""
        refs = [TOKEN, *(SecretRef(name, what=f"a key of chat.brain ({self.chat.brain.engine})")
                         for name in self.chat.secret_env_names())]
        refs += [output.secret() for output in self.simulcast.outputs]
        return refs


def parse_config(data: Any, source: str = "config") -> Settings:
    """Validate already-parsed YAML; ConfigError names every bad key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping with an 'agent:' section",
                          fix="start from config.example.yaml")
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {validation_problems(exc)}",
                          fix="edit the file; config.example.yaml documents every key") from None


def load_config(path: str | os.PathLike[str]) -> Settings:
    """Read and validate the YAML config at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file",
                          fix="copy config.example.yaml there, or pass --config FILE") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}:{yaml_problem(exc)}") from None
    return parse_config(data, str(path))
