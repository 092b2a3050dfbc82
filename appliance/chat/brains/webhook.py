"""The webhook brain: POSTs the turn as JSON to ``chat.webhook.url``; the reply is the JSON
answer (``{"text": "..."}``, ``{"text": null}`` for none, optional ``"notes"``).

Extra headers (an auth token for that service) come from environment variables named in
``chat.webhook.headers_env``, never from YAML. Redirects are not followed, so the headers go
to that URL only. A failure or a timeout falls back to the host brain for that turn.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping

import requests

from ...core.sanitize import clean_text
from ...core.secrets import SecretStore
from .base import Brain, ChatContext, Turn
from .command import remember_notes, reply_text
from .settings import WebhookBrainConfig

log = logging.getLogger("appliance.chat")


class WebhookBrain:
    name = "webhook"

    def __init__(self, cfg: WebhookBrainConfig, *, fallback: Brain,
                 scrub: Callable[[str], str] = lambda text: text,
                 environ: Mapping[str, str] | None = None,
                 session: requests.Session | None = None) -> None:
        self.cfg, self.fallback, self.scrub = cfg, fallback, scrub
        self.environ = environ if environ is not None else SecretStore()  # keys by name, read once
        self.session = session or requests.Session()
        self.session.trust_env = False

    def respond(self, turn: Turn, ctx: ChatContext) -> str | None:
        timeout = max(0.2, ctx.remaining(self.cfg.timeout_s))
        headers = {"Content-Type": "application/json"}
        headers.update({name: self.environ[env] for name, env in self.cfg.headers_env.items()
                        if self.environ.get(env)})
        body = self.scrub(json.dumps(ctx.payload(turn), ensure_ascii=False)).encode("utf-8")
        try:
            response = self.session.post(self.cfg.url, data=body, headers=headers,
                                         timeout=(min(3.0, timeout), timeout), allow_redirects=False)
            if response.status_code >= 300:
                raise ValueError(f"HTTP {response.status_code}")
            data = response.json() if response.content.strip() else None
            text = reply_text(data) if data is not None else None
            remember_notes(data, turn, ctx)
        except (requests.RequestException, ValueError) as exc:
            log.warning("webhook brain: %s; the host brain answers this turn", clean_text(str(exc), 200))
            return self.fallback.respond(turn, ctx)
        return clean_text(text, ctx.max_reply_chars) if text else None

    def proactive(self, ctx: ChatContext) -> str | None:
        return self.fallback.proactive(ctx)
