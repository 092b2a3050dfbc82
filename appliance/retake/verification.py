"""Registration and Twitter/X verification (reference sections 1 and 1b)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..core.errors import CredentialsError, InputError, RetakeError
from .client import RetakeClient
from .credentials import Credentials, Secret, resolve_credentials, save_credentials

if TYPE_CHECKING:  # the composed settings, handed in by the composition root
    from ..config import Settings

_TWEET_HOSTS = {"twitter.com", "www.twitter.com", "mobile.twitter.com", "x.com", "www.x.com", "mobile.x.com"}
_STATUS_PATH = re.compile(r"^/[A-Za-z0-9_]{1,15}/status(?:es)?/\d{1,25}/?$")


def validate_tweet_url(url: str) -> str:
    """Only a real twitter.com / x.com status URL (``https://x.com/<user>/status/<id>``)."""
    parts = urlsplit(url.strip())
    if parts.scheme != "https" or (parts.hostname or "").lower() not in _TWEET_HOSTS \
            or not _STATUS_PATH.match(parts.path) or parts.username or parts.port:
        raise InputError(f"{url!r} is not a Twitter/X status URL",
                         fix="paste the tweet's link, like https://x.com/<user>/status/1234567890")
    return url.strip()


def register_agent(settings: Settings, client: RetakeClient, *,
                   environ: Mapping[str, str] | None = None) -> tuple[Credentials, Path]:
    """Register once; refuses when credentials exist (the file, or a token in the environment,
    which would win over the new one) so nobody re-registers by accident.

    The access token is issued once and never shown again, so it is saved the moment the answer
    is read (the client parses it first; every other field is optional), before anything else can
    fail. An answer without ``userDbId`` is completed from ``stream/status`` and saved again."""
    found = resolve_credentials(settings, environ=environ)
    path = found.path
    if found.saved is not None:
        raise CredentialsError(f"already registered: credentials exist at {path}",
                               fix="use them (appliance status); move the file away only to create a new agent")
    if found.env_token:
        raise CredentialsError("already registered: the environment gives an access token "
                               "(RETAKE_ACCESS_TOKEN or RETAKE_ACCESS_TOKEN_FILE)",
                               fix="unset it to register a new agent; otherwise `appliance live` uses it")
    agent = settings.agent
    result = client.register(agent_name=agent.name, agent_description=agent.description,
                             image_url=agent.image_url, wallet_address=agent.wallet_address,
                             ticker=agent.ticker)
    creds = Credentials(access_token=Secret(result.access_token), agent_name=agent.name,
                        agent_id=result.agent_id, userDbId=result.userDbId,
                        wallet_address=result.wallet_address or agent.wallet_address, ticker=agent.ticker,
                        token_address=result.token_address, token_ticker=result.token_ticker)
    save_credentials(path, creds)
    if not creds.userDbId:
        try:
            user_db_id = client.with_token(creds.access_token).stream_status().userDbId
        except RetakeError as exc:
            raise CredentialsError(f"registered, and the access token is saved at {path}, but the answer had no "
                                   f"userDbId and stream/status failed ({exc.message})",
                                   fix="do not register again: add \"userDbId\" to that file (GET "
                                       "/agent/stream/status with the token says it, once the API answers)") from None
        if not user_db_id:
            raise CredentialsError(f"registered, and the access token is saved at {path}, but the platform did "
                                   "not say our userDbId",
                                   fix="do not register again: add \"userDbId\" to that file "
                                       "(retake.tv support can tell it)")
        creds = replace(creds, userDbId=user_db_id)
        save_credentials(path, creds)
    return creds, path


def tweet_instructions(message: str) -> str:
    return ("Please post this exact message in a tweet:\n\n"
            f"    {message}\n\n"
            "Then run: appliance verify https://x.com/<you>/status/<id>")
