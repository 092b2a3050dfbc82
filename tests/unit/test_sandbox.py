"""The sandbox's set-up errors: a missing nginx names the Debian packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.sandbox.rtmp import IngestError, find_nginx


def test_missing_nginx_names_the_debian_packages() -> None:
    with pytest.raises(IngestError, match="nginx libnginx-mod-rtmp"):
        find_nginx(Path("/nonexistent/ngx_rtmp_module.so"))
