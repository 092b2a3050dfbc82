"""Where a URL really goes, decided once with the transport's own parser, and rebuilt from that.

The token boundary rests on one fact: requests connects where urllib3's ``parse_url`` says, and
the standard library's ``urlsplit`` sometimes disagrees (``https://evil.com\\@retake.tv`` is
retake.tv to ``urlsplit`` and evil.com to urllib3). So the client never hands the transport a URL
it received: every URL (``base_url``, a call's path, each redirect's ``Location``) is parsed here
with ``urllib3.util.parse_url``, checked, and **rebuilt** from a validated scheme, host and port
(:class:`Target`). The decision "may this request carry the token" compares that :class:`Origin`
with the configured one, and the URL sent is ``target.url`` — made from the same three values —
so the decision and the connection cannot diverge.

Refused outright (:class:`UnsafeUrl`): user info (``user:pass@``, which requests would also turn
into Basic auth), backslashes, control characters and whitespace anywhere, ``%`` in a host
(encoded separators, IPv6 zone ids), numeric hosts that are not a canonical IPv4 address
(``127.1``, ``0x7f.1``: resolvers read them as addresses), schemes other than http(s), and any URL
on which ``urlsplit`` names a different host or port than urllib3 (a parser differential we do not
know of yet stays a refusal, never a leak).

Hosts are compared after IDNA (UTS #46, as requests encodes them) and lower-casing, without a
trailing dot; the default port is made explicit. This module imports nothing from the rest of the
appliance, so ``appliance.config`` can use it to validate ``retake.base_url``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import idna
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

RETAKE_HOST = "retake.tv"
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_URL = 4096
_FORBIDDEN = re.compile(r"[\\\x00-\x20\x7f-\xa0\u1680\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\ufeff]")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


class UnsafeUrl(ValueError):
    """A URL the token boundary refuses; the message says what is wrong with it (never the URL's secrets)."""


@dataclass(frozen=True)
class Origin:
    """scheme + normalised host + explicit port: what a connection really goes to."""

    scheme: str
    host: str  # IDNA ASCII, lower case, no trailing dot; an IPv6 address without brackets
    port: int

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}"

    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True)
class Target:
    """A request URL rebuilt from a validated origin, path and query (a fragment is dropped)."""

    origin: Origin
    path: str  # always starts with "/"
    query: str = ""

    @property
    def url(self) -> str:
        return self.origin.url + self.path + (f"?{self.query}" if self.query else "")


def is_loopback_host(host: str | None) -> bool:
    """``localhost`` or a loopback IP literal (with or without IPv6 brackets)."""
    if not host:
        return False
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_text(url: object, what: str = "URL") -> str:
    """The raw text must be a bounded string without backslashes, controls or whitespace."""
    if not isinstance(url, str) or not url:
        raise UnsafeUrl(f"{what} must be a non-empty string")
    if len(url) > MAX_URL:
        raise UnsafeUrl(f"{what} is longer than {MAX_URL} characters")
    bad = _FORBIDDEN.search(url)
    if bad:
        kind = "a backslash" if bad.group() == "\\" else f"a control or space character (U+{ord(bad.group()):04X})"
        raise UnsafeUrl(f"{what} contains {kind}")
    return url


def normalize_host(host: str | None) -> str:
    """The host as the connection uses it: IDNA ASCII, lower case, no trailing dot."""
    if not host:
        raise UnsafeUrl("the URL has no host")
    if "%" in host:
        raise UnsafeUrl("percent signs are not allowed in a host (encoded separators, zone ids)")
    if host.startswith("[") or ":" in host:
        try:
            return ipaddress.IPv6Address(host.strip("[]")).compressed
        except ValueError:
            raise UnsafeUrl("not a valid IPv6 address in brackets") from None
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError:
            raise UnsafeUrl("the host is not a valid internationalised domain name") from None
    host = host.lower()
    if host.endswith("."):
        host = host[:-1]
    labels = host.split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise UnsafeUrl("a numeric host must be a plain dotted IPv4 address like 127.0.0.1") from None
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise UnsafeUrl("the host is not a valid DNS name")
    return host


def parse_target(url: str, what: str = "URL") -> Target:
    """An absolute http(s) URL, parsed as urllib3 parses it and checked; :class:`UnsafeUrl` if not."""
    check_text(url, what)
    try:
        parts = parse_url(url)
    except LocationParseError:
        raise UnsafeUrl(f"{what} cannot be parsed") from None
    scheme = (parts.scheme or "").lower()
    if scheme not in DEFAULT_PORTS:
        raise UnsafeUrl(f"{what} must be an absolute http:// or https:// URL")
    if parts.auth is not None or "@" in url.split("//", 1)[-1].split("/", 1)[0]:
        raise UnsafeUrl(f"{what} must not contain user info (user:password@)")
    host = normalize_host(parts.host)
    port = parts.port if parts.port is not None else DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise UnsafeUrl(f"{what} has an invalid port")
    origin = Origin(scheme, host, port)
    if _stdlib_origin(url) != origin:
        raise UnsafeUrl(f"{what} is read differently by different URL parsers")
    path = parts.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    return Target(origin, path, parts.query or "")


def _stdlib_origin(url: str) -> Origin | None:
    """What ``urllib.parse`` makes of the URL (a second opinion that must agree)."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        return Origin(scheme, normalize_host(parts.hostname), parts.port or DEFAULT_PORTS[scheme])
    except (ValueError, KeyError):
        return None


def parse_origin(url: str, what: str = "URL") -> Origin:
    return parse_target(url, what).origin


def resolve(current: Target, location: str, what: str = "redirect Location") -> Target:
    """Where a reference (a redirect's ``Location``, a call's relative path) leads from ``current``."""
    check_text(location, what)
    if _SCHEME.match(location):
        return parse_target(location, what)
    if location.startswith("//"):
        return parse_target(f"{current.origin.scheme}:{location}", what)
    target = parse_target(urljoin(current.url, location), what)
    if target.origin != current.origin:  # cannot happen for a checked relative reference
        raise UnsafeUrl(f"{what} left the origin it is relative to")
    return target


def api_origin_problem(origin: Origin, *, sandbox: bool) -> str | None:
    """Why the access token may not go to ``origin`` (None: it may): retake.tv over https on
    port 443, or a loopback sandbox the config names with ``retake.sandbox: true``."""
    if origin.host == RETAKE_HOST:
        if origin.scheme != "https":
            return "retake.tv is only reached over https"
        if origin.port != 443:
            return "retake.tv is only reached on port 443"
        return None
    if origin.is_loopback():
        return None if sandbox else "a loopback host is the sandbox; set retake.sandbox: true"
    return (f"the access token goes to retake.tv only, not {origin.host!r} "
            "(or a loopback sandbox with retake.sandbox: true)")


def validate_base_url(url: str, *, sandbox: bool) -> str:
    """``retake.base_url`` checked and rebuilt (canonical form, no trailing slash); ValueError if refused."""
    try:
        target = parse_target(url, "base_url")
    except UnsafeUrl as exc:
        raise ValueError(f"{exc}; use a URL such as https://retake.tv/api/v1") from None
    if target.query or "#" in url:
        raise ValueError("base_url must not have a query or fragment; use a URL such as https://retake.tv/api/v1")
    problem = api_origin_problem(target.origin, sandbox=sandbox)
    if problem:
        raise ValueError(f"base_url: {problem}")
    return (target.origin.url + target.path).rstrip("/")
