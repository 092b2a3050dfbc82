"""A faithful local retake.tv for tests and rehearsals (the "sandbox").

REST (``/api/v1``), Socket.IO (``/socket.io/``), an nginx-rtmp ingest that records every
publish, simulated viewers, and a ``/_sandbox/`` control surface. It follows the reference skill
document (retake-skill.md 2.1.2), not any client, and where that text is silent it assumes the
least a client may rely on (no ``joinRoom`` acknowledgement, documented payloads only, comment
pages newest first with times to the second); the decisions are listed in ``platform.py``, the
switches that turn kindnesses back on in docs/sandbox.md. Faults for tests and the chaos bench
(5xx bursts, 429 with Retry-After, headers-then-reset, slow bodies, truncated JSON, refused
publishes) are injected through
``POST /_sandbox/faults`` (or ``Sandbox.set_fault``), documented in ``routes.py``. It imports
nothing from the rest of the appliance but the stdlib-only ``appliance.core.files`` and
``appliance.core.proc``.

    with Sandbox(port=0, rtmp=True, viewer_interval=0) as sb:
        requests.post(f"{sb.base_url}/agent/register", json={...})
"""

from .platform import ApiError, Platform, Settings
from .routes import SandboxApp, create_app
from .rtmp import IngestError, RtmpIngest
from .server import Sandbox, SandboxError, run_sandbox_cli

__all__ = ["ApiError", "IngestError", "Platform", "RtmpIngest", "Sandbox", "SandboxApp", "SandboxError",
           "Settings", "create_app", "run_sandbox_cli"]
