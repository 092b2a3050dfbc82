"""Hostile URL material for the token-boundary tests (the unit tests of the base_url check and
the integration tests at real listeners): templates of URLs that put an evil host where a parser
might read the good one, noise to insert, and a second opinion on a URL's origin."""

from __future__ import annotations

from urllib.parse import urlsplit

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from urllib3.util import parse_url

PROPERTY = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
SCHEMES = ("http", "HTTP", "hTtP", "https")
TEMPLATES = (
    "{s}://{g}{p}", "{s}://{e}{p}", "//{g}{p}", "//{e}{p}", "{p}", "x{p}", "../{p}",
    "{s}://{e}\\@{g}{p}", "{s}://{g}\\@{e}{p}", "{s}://{e}@{g}{p}", "{s}://{g}@{e}{p}", "{s}://u:p@{g}{p}",
    "{s}://{e}%2f@{g}{p}", "{s}://{e}%5c@{g}{p}", "{s}://{e}%2F@{g}{p}", "{s}://{e}%5C@{g}{p}",
    "{s}://{g}%2f{e}{p}", "{s}://{g}#@{e}{p}", "{s}://{g}?@{e}{p}", "{s}://{g}/@{e}{p}",
    "{s}:\\\\{e}{p}", "{s}:/\\{e}{p}", "/\\{e}{p}", "\\\\{e}{p}", "///{e}{p}", "{s}:{e}{p}", "{s}:/{e}{p}",
)
PATHS = ("/x", "/api/v1/agent/stream/status", "/a%2f..%2fb", "//x", "/../x", "")
NOISE = (" ", "\t", "\x00", "\x0b", "\x7f", "\u00a0", "\u3000", "\u200b", "@", "\\", "%", "#", "?", ":", "/", ".", "[")


def goods(port: int) -> list[str]:
    return [f"127.0.0.1:{port}", f"127.0.0.1.:{port}", f"127.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}",
            f"[::1]:{port}", f"127.0.0.1:0{port}", f"0x7f.0.0.1:{port}", "127.0.0.1", f"2130706433:{port}"]


def evils(port: int) -> list[str]:
    return [f"127.0.0.1:{port}", f"evil.com:{port}", f"EVIL.com.:{port}", f"127.0.0.1.evil.com:{port}",
            f"retake.tv.evil.com:{port}", f"[::1]:{port}", f"l\u043ecalhost:{port}", f"\uff45vil.com:{port}",
            f"xn--lcalhost-9wh:{port}", f"127.0.0.1%2f.evil.com:{port}", f"[::ffff:127.0.0.1]:{port}"]


@st.composite
def hostile(draw: st.DrawFn, good_port: int, evil_port: int) -> str:
    url = draw(st.sampled_from(TEMPLATES)).format(
        s=draw(st.sampled_from(SCHEMES)), g=draw(st.sampled_from(goods(good_port))),
        e=draw(st.sampled_from(evils(evil_port))), p=draw(st.sampled_from(PATHS)))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(url)))
        url = url[:at] + draw(st.sampled_from(NOISE)) + url[at:]
    return url


def independent_origin(url: str) -> tuple[str, int]:
    """(host, port) as urllib3 and the standard library both read it; they must agree."""
    mine = parse_url(url)
    other = urlsplit(url)
    default = {"http": 80, "https": 443}[other.scheme.lower()]
    hosts = {(mine.host or "").strip("[]").lower().rstrip("."), (other.hostname or "").lower().rstrip(".")}
    ports = {mine.port or default, other.port or default}
    assert len(hosts) == 1 and len(ports) == 1, f"accepted an ambiguous base_url {url!r}: {hosts} {ports}"
    return hosts.pop(), ports.pop()
