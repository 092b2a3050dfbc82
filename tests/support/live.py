"""The lifecycle in-process against the sandbox: an agent, its settings, a running lifecycle."""

from __future__ import annotations

import threading

from appliance.config import parse_config
from appliance.core.store import StateStore
from appliance.live.heartbeat import Heartbeat
from appliance.live.lifecycle import Lifecycle
from appliance.live.notify import Notifier
from appliance.live.parts import Parts, Timing, chat_factory
from appliance.media.display import capture_png
from appliance.media.encoder import Encoder
from appliance.retake.client import RetakeClient
from appliance.retake.credentials import Credentials, Secret, save_credentials
from tests.support.data import WALLET, config, register
from tests.support.sandbox import entry_name


def make_agent(sandbox, tmp_path, name: str, *, verified: bool = True) -> dict:
    result, client = register(RetakeClient(config(sandbox)), name)
    if verified:
        client.prepare_verify()
        client.verify("https://x.com/tester/status/1234567890")
    creds = Credentials(access_token=Secret(result.access_token), agent_name=name, agent_id=result.agent_id,
                        userDbId=result.userDbId, wallet_address=WALLET, ticker="CLI")
    cred_path = tmp_path / "creds" / "credentials.json"
    save_credentials(cred_path, creds)
    return {"name": name, "token": result.access_token, "user": result.userDbId, "cred_path": cred_path,
            "client": client}


def settings_for(sandbox, tmp_path, agent, display, **overrides):
    data = {
        "agent": {"name": agent["name"],
                  "description": "d", "image_url": "https://example.com/a.png",
                  "wallet_address": WALLET, "ticker": "CLI"},
        "retake": {"base_url": sandbox.base_url, "sandbox": True, "timeout_s": 5, "backoff_s": 0.05,
                   "backoff_max_s": 0.5, "retries": 3},
        "paths": {"credentials": str(agent["cred_path"]), "state_dir": str(tmp_path / "state")},
        # min_speed 0.5: no speed restart the test did not ask for on a busy machine (test_media has the rule)
        "stream": {"display": display, "audio_source": "silent", "status_poll_s": 1, "min_speed": 0.5},
        "chat": {"poll_s": 1, "quiet_poll_s": 1},
        "recovery": {"backoff_s": 0.2, "backoff_max_s": 1},
    }
    for key, value in overrides.items():
        data.setdefault(key, {}).update(value)
    return parse_config(data)


class Running:
    """A lifecycle on a thread, with its progress lines collected. ``timing`` keywords
    (``liveness_window_s``, ``credentials_recheck_s``, ``wall_clock``, ``clock``) shorten or
    shift its clocks; ``parts`` keywords replace a collaborator (``publish``, ``scenes``, ...);
    ``heartbeat``: run the heartbeat while not live, as ``appliance live`` does."""

    def __init__(self, settings, *, encoder=None, client=None, responder=None, chat_services=None,
                 heartbeat: bool = False, **kw):
        self.settings = settings
        self.lines: list[str] = []
        self.encoder = encoder or Encoder(settings.stream)
        self.stop = threading.Event()
        store = StateStore(settings.state_dir)
        timing = {k: kw.pop(k) for k in list(kw) if k in Timing.__dataclass_fields__}
        self.notifier = kw.pop("notifier", None) or Notifier(settings)
        if heartbeat:  # as app.py wires it
            kw["heartbeat"] = Heartbeat(settings.live.heartbeat, notifier=self.notifier, store=store)
        parts = Parts(client=client or RetakeClient(settings.retake), encoder=self.encoder,
                      capture=lambda: capture_png(settings.stream.display), notifier=self.notifier, store=store,
                      chat=chat_factory(settings, store, services=chat_services, responder=responder), **kw)
        self.lc = Lifecycle(settings, parts, timing=Timing(**timing), stop_event=self.stop,
                            progress=self.lines.append)
        self.rc: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        self.rc = self.lc.run()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)
        self.encoder.stop()


def paths(log, after=0):
    return [(r["method"], entry_name(r)) for r in log[after:]]
