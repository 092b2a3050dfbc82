"""One exception tree for the whole appliance.

Every error the CLI can show derives from :class:`ApplianceError`, carries a one-line
message (what, where, how to fix) and an exit code: 2 for bad config or input, 1 otherwise.
Lifecycle code asks ``err.temporary`` to decide between retry-after-a-delay and stop.
"""

from __future__ import annotations


class ApplianceError(Exception):
    """Root of every error the appliance raises on purpose."""

    exit_code: int = 1
    temporary: bool = False

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} — {self.fix}" if self.fix else self.message


class ConfigError(ApplianceError):
    """The YAML config (or a value derived from it) is invalid."""

    exit_code = 2


class InputError(ApplianceError):
    """A command-line argument or other operator input is invalid."""

    exit_code = 2


class NotFoundError(InputError):
    """Operator input names something that does not exist (the control API answers 404)."""


class CredentialsError(ApplianceError):
    """Credentials are missing, unreadable or would be overwritten."""

    exit_code = 2


class MediaError(ApplianceError):
    """A media process (Xvfb, PulseAudio, FFmpeg, capture) failed."""

    temporary = True


class SecurityError(ApplianceError):
    """A request would have sent a secret somewhere it must never go."""


# --- retake.tv API errors, by HTTP class -------------------------------------------------

class RetakeError(ApplianceError):
    """An error answered by (or on the way to) the retake.tv API."""

    status: int | None = None
    default_fix = "see the retake.tv skill document's Errors table"

    def __init__(self, message: str, *, status: int | None = None, fix: str | None = None,
                 method: str = "", path: str = "") -> None:
        super().__init__(message, fix=fix or self.default_fix)
        if status is not None:
            self.status = status
        self.method = method
        self.path = path


class RetakeBadRequest(RetakeError):
    status = 400
    default_fix = "Check fields, change name"


class RetakeUnauthorized(RetakeError):
    status = 401
    default_fix = "Re-check credentials (RETAKE_ACCESS_TOKEN or the credentials file)"


class RetakeNotFound(RetakeError):
    status = 404
    default_fix = "Verify userDbId, session_id, or user_id"


class RetakeConflict(RetakeError):
    status = 409
    default_fix = "Call /agent/stream/start first"
    temporary = True


class RetakeTooManyRequests(RetakeError):
    status = 429
    default_fix = "Slow down; retry after the delay the server asks for"
    temporary = True


class RetakeServerError(RetakeError):
    status = 500
    default_fix = "Retry; report if persistent"
    temporary = True


class RetakeUnavailable(RetakeError):
    """No HTTP answer at all: connection refused, DNS failure, timeout."""

    default_fix = "Check the network and retake.base_url; the appliance retries by itself"
    temporary = True


class RetakeProtocolError(RetakeError):
    """An answer whose shape we do not understand."""

    default_fix = "The platform changed its answer; update the appliance or report it"


def error_for_status(status: int) -> type[RetakeError]:
    """The exception class for an HTTP error status."""
    if status == 400:
        return RetakeBadRequest
    if status == 401 or status == 403:
        return RetakeUnauthorized
    if status == 404:
        return RetakeNotFound
    if status == 409:
        return RetakeConflict
    if status == 429:
        return RetakeTooManyRequests
    if status >= 500:
        return RetakeServerError
    return RetakeError
