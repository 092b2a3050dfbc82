"""Brains (responders): one module per brain behind :mod:`.base`."""

from .base import ChatContext, Responder
from .host import OfflineResponder

__all__ = ["ChatContext", "OfflineResponder", "Responder"]
