"""The retake.tv API: typed client, answer models and the skill version check.

Names are exported lazily, so ``appliance.config`` can import ``appliance.retake.origin`` (the
token boundary's URL rules) without importing the client, which imports the config.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Comment", "RetakeClient", "RtmpCredentials", "StreamStatus"]


def __getattr__(name: str) -> Any:
    if name == "RetakeClient":
        from .client import RetakeClient
        return RetakeClient
    if name in ("Comment", "RtmpCredentials", "StreamStatus"):
        from . import models
        return getattr(models, name)
    raise AttributeError(name)
