"""Data and small helpers every tier shares: a valid wallet, a retake config for a sandbox, an
agent registered in it."""

from __future__ import annotations

from pathlib import Path

from appliance.config import Settings, parse_config
from appliance.retake.client import RetakeClient
from appliance.retake.credentials import Secret
from appliance.retake.settings import RetakeConfig

REPO = Path(__file__).resolve().parents[2]
WALLET = "11111111111111111111111111111111"
# two viewers' wallets with the same first characters: the platform's own short form collides
W1 = "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T"
W2 = "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gQQQQ"


def agent_section(name: str = "TestAgent", **fields: str) -> dict[str, str]:
    """A valid ``agent:`` section of the config (``fields`` replace its values)."""
    return {"name": name, "description": "d", "image_url": "https://example.com/a.png",
            "wallet_address": WALLET, "ticker": "TEST", **fields}


def settings_in(tmp_path: Path, name: str = "TestAgent", **sections: object) -> Settings:
    """Valid settings with the state under ``tmp_path`` and ``sections`` added."""
    return parse_config({"agent": agent_section(name), "paths": {"state_dir": str(tmp_path / "state")},
                         **sections}, "t.yaml")


def config(sb, **kw) -> RetakeConfig:
    return RetakeConfig(base_url=sb.base_url, sandbox=True, timeout_s=5, backoff_s=0.01, backoff_max_s=0.05, **kw)


def register(client: RetakeClient, name: str = "ClientAgent"):
    result = client.register(agent_name=name, agent_description="testing", image_url="https://example.com/a.png",
                             wallet_address=WALLET, ticker="CLI")
    return result, client.with_token(Secret(result.access_token))
