"""The webhook brain: POSTs the turn as JSON to ``chat.brain.url``; the reply is the JSON
answer (``{"text": "..."}``, ``{"text": null}`` for none, optional ``"notes"``).

Extra headers (an auth token for that service) come from environment variables named in
``chat.brain.headers_env``, never from YAML. Redirects are not followed, so the headers go
to that URL only. The whole request has one deadline (``chat.brain.timeout_s``, and the turn's
own; :mod:`.http`), so an endpoint that drips its answer never holds the reply worker past it.
A failure or a timeout falls back to the host brain for that turn.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping

from ...core.sanitize import clean_text
from ...core.secrets import SecretStore
from .base import Brain, ChatContext, Turn
from .command import remember_notes, reply_text
from .http import BrainHttpError, DeadlineHttp
from .settings import WebhookBrainConfig

log = logging.getLogger("appliance.chat")


class WebhookBrain:
    name = "webhook"

    def __init__(self, cfg: WebhookBrainConfig, *, fallback: Brain,
                 scrub: Callable[[str], str] = lambda text: text,
                 environ: Mapping[str, str] | None = None, http: DeadlineHttp | None = None) -> None:
        self.cfg, self.fallback, self.scrub = cfg, fallback, scrub
        self.environ = environ if environ is not None else SecretStore()  # keys by name, read once
        self.http = http or DeadlineHttp()

    def respond(self, turn: Turn, ctx: ChatContext) -> str | None:
        timeout = max(0.2, ctx.remaining(self.cfg.timeout_s))
        headers = {"Content-Type": "application/json"}
        headers.update({name: self.environ[env] for name, env in self.cfg.headers_env.items()
                        if self.environ.get(env)})
        body = self.scrub(json.dumps(ctx.payload(turn), ensure_ascii=False)).encode("utf-8")
        try:
            answer = self.http.post(self.cfg.url, body, headers, deadline_s=timeout)
            if answer.status >= 300:
                raise ValueError(f"HTTP {answer.status}")
            data = json.loads(answer.body) if answer.body.strip() else None
            text = reply_text(data) if data is not None else None
            remember_notes(data, turn, ctx)
        except (BrainHttpError, ValueError) as exc:
            log.warning("webhook brain: %s; the host brain answers this turn", clean_text(str(exc), 200))
            return self.fallback.respond(turn, ctx)
        return clean_text(text, ctx.max_reply_chars) if text else None

    def proactive(self, ctx: ChatContext) -> str | None:
        return self.fallback.proactive(ctx)

    def close(self) -> None:
        self.http.close()
