"""The retake.tv API: typed client, answer models and the skill version check."""

from .client import RetakeClient
from .models import Comment, RtmpCredentials, StreamStatus

__all__ = ["RetakeClient", "Comment", "RtmpCredentials", "StreamStatus"]
