"""Which ``retake.base_url`` the token may go to: only what every URL parser reads as
https://retake.tv:443 (or an explicit loopback sandbox), stored rebuilt; a config built around
validation still cannot point the client elsewhere. What reaches real listeners is
tests/integration/test_token_boundary.py."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError
from urllib3.util import parse_url

from appliance.core.errors import SecurityError
from appliance.retake.client import RetakeClient
from appliance.retake.credentials import Secret
from appliance.retake.settings import RetakeConfig
from tests.support.urls import PROPERTY, SCHEMES, TEMPLATES, independent_origin

TOKEN = "rtk_boundary_" + "5" * 24


@PROPERTY
@given(url=st.builds(lambda t, s, g, e, p: t.format(s=s, g=g, e=e, p=p),
                     st.sampled_from(TEMPLATES), st.sampled_from(SCHEMES),
                     st.sampled_from(("retake.tv", "RETAKE.TV", "retake.tv.", "retake.tv:443", "retake.tv:8443",
                                      "\uff52etake.tv", "xn--retke-6ve.tv", "ret\u0430ke.tv")),
                     st.sampled_from(("evil.com", "retake.tv.evil.com", "evil.com:443", "127.0.0.1", "[::1]")),
                     st.sampled_from(("/api/v1", "", "/api/v1/"))))
@example(url="https://evil.com\\@retake.tv/api/v1")
def test_a_real_base_url_is_accepted_only_when_every_parser_says_retake_tv(url: str) -> None:
    try:
        cfg = RetakeConfig(base_url=url)
    except ValidationError:
        return
    assert independent_origin(url) == ("retake.tv", 443)
    assert urlsplit(url).scheme.lower() == "https" and parse_url(url).auth is None
    assert cfg.base_url.startswith("https://retake.tv/")


def test_canonical_spellings_are_accepted_and_stored_rebuilt() -> None:
    assert RetakeConfig(base_url="HTTPS://RETAKE.TV./api/v1/").base_url == "https://retake.tv/api/v1"
    assert RetakeConfig(base_url="https://retake.tv:443/api/v1").base_url == "https://retake.tv/api/v1"
    assert RetakeConfig(base_url="http://[::1]:8765/api/v1", sandbox=True).base_url == "http://[::1]:8765/api/v1"
    for bad, why in (("https://retake.tv/api/v1?x=1", "query"), ("https://retake.tv:8443/api/v1", "port 443"),
                     ("https://retake.tv/api v1", "space"), ("https://retake.tv\\@evil.com/", "backslash")):
        with pytest.raises(ValidationError, match=why):
            RetakeConfig(base_url=bad)


def test_a_config_built_around_validation_still_cannot_point_the_client_elsewhere() -> None:
    for url in ("https://evil.com/api/v1", "http://evil.com:1\\@127.0.0.1:2/api/v1", "http://127.0.0.1:9/api/v1"):
        with pytest.raises(SecurityError, match="base_url refused"):
            RetakeClient(RetakeConfig.model_construct(base_url=url, sandbox=False, timeout_s=1, retries=0),
                         Secret(TOKEN))
