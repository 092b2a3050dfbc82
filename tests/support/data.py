"""Data and small helpers every tier shares: a valid wallet, a retake config for a sandbox, an
agent registered in it."""

from __future__ import annotations

from appliance.retake.client import RetakeClient
from appliance.retake.credentials import Secret
from appliance.retake.settings import RetakeConfig

WALLET = "11111111111111111111111111111111"


def config(sb, **kw) -> RetakeConfig:
    return RetakeConfig(base_url=sb.base_url, sandbox=True, timeout_s=5, backoff_s=0.01, backoff_max_s=0.05, **kw)


def register(client: RetakeClient, name: str = "ClientAgent"):
    result = client.register(agent_name=name, agent_description="testing", image_url="https://example.com/a.png",
                             wallet_address=WALLET, ticker="CLI")
    return result, client.with_token(Secret(result.access_token))
