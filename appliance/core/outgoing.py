"""Every word that leaves the appliance passes one filter: chat, voice, captions, scene text,
``/say`` and ``/show``, terminal input typed for an agent, the console and the MCP tools.

:class:`Secrets` holds the secret values the appliance knows (the access token, the control
bearer, the LLM key, webhook header values, simulcast keys), read from their sources at check
time (a token that arrives later, a key file that changes). :class:`OutgoingFilter` refuses a
text that carries one of them, or a piece of one:

* the value itself, also with separators, case or zero-width characters in between (letters and
  digits are compared, everything else falls away), and reversed;
* any piece of a longer value with 12 letters and digits in a row (so every 16-character slice
  of a token, separators included, at every position, not every 4th), reversed too. The
  values are random, so 12 of their letters and digits never turn up in ordinary text.

The chat path adds its policy on top (:meth:`OutgoingFilter.check`: no ``@`` pings, the link
policy, a length cap); the other paths refuse or pass the text as it is
(:meth:`OutgoingFilter.guard`). :meth:`OutgoingFilter.scrub` takes secrets out of anything
headed for a prompt or a payload.

This module imports only the standard library and the core, so every layer can hold the one
filter the composition root builds.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable

from .errors import ApplianceError
from .sanitize import clean_text, strip_links

log = logging.getLogger("appliance.outgoing")
MIN_SECRET = 8      # shorter values are not secrets worth matching (they would match ordinary words)
WINDOW = 12         # this many letters and digits of a secret in a row, anywhere in it, are a leak


class Refused(ApplianceError):
    """The outgoing filter would not let a text leave (it names why, never the secret; the
    control API answers 422)."""


def _compact(text: str) -> str:
    """Letters and digits only, case folded: separators and zero-width tricks fall away."""
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text)).casefold()


@functools.lru_cache(maxsize=64)
def _pieces(core: str) -> frozenset[str]:
    """Every WINDOW-long piece of ``core`` and of ``core`` reversed."""
    if len(core) <= WINDOW:
        return frozenset({core, core[::-1]})
    backwards = core[::-1]
    return frozenset(s[i:i + WINDOW] for s in (core, backwards) for i in range(len(core) - WINDOW + 1))


class Secrets:
    """The secret values to keep in: fixed ones (:meth:`add`) and sources read at each check
    (:meth:`add_source`: a credentials object whose token arrives later, a key file). Calling
    it returns the current values (at least MIN_SECRET characters each)."""

    def __init__(self, *values: str, sources: Iterable[Callable[[], Iterable[str]]] = ()) -> None:
        self._lock = threading.Lock()
        self._values = [v for v in values if v]
        self._sources = list(sources)

    def add(self, *values: str) -> None:
        with self._lock:
            self._values.extend(v for v in values if v)

    def add_source(self, source: Callable[[], Iterable[str]]) -> None:
        with self._lock:
            self._sources.append(source)

    def __call__(self) -> list[str]:
        with self._lock:
            values, sources = list(self._values), list(self._sources)
        for source in sources:
            try:
                values.extend(str(v) for v in source() if v)
            except Exception:  # a source that fails (a key file gone) keeps no one else out
                log.debug("a secret source failed", exc_info=True)
        return [v for v in dict.fromkeys(v.strip() for v in values) if len(v) >= MIN_SECRET]

    def __repr__(self) -> str:  # never a value
        return f"Secrets({len(self())} values)"


class OutgoingFilter:
    """The one filter of outgoing words: never a secret; on the chat path also no pings, the
    link policy and a length cap."""

    def __init__(self, secrets: Callable[[], Iterable[str]], *, max_chars: int = 280,
                 links: str = "strip") -> None:
        self._secrets = secrets
        self.max_chars = max_chars
        self.links = links
        self.refused = 0

    def _values(self) -> list[str]:
        return [s for s in (str(v) for v in self._secrets() if v) if len(s) >= MIN_SECRET]

    def contains_secret(self, text: str) -> bool:
        """True when ``text`` carries a secret, reversed or not, or a WINDOW-long piece of one
        (compared as letters and digits)."""
        compact = _compact(text)
        for secret in self._values():
            if secret in text or secret[::-1] in text:
                return True
            core = _compact(secret)
            if len(core) < MIN_SECRET:
                continue
            if core in compact or core[::-1] in compact:
                return True
            if len(core) > WINDOW:
                pieces = _pieces(core)
                if any(compact[i:i + WINDOW] in pieces for i in range(len(compact) - WINDOW + 1)):
                    return True
        return False

    def guard(self, text: str, *, what: str = "text") -> str:
        """``text`` unchanged, or :class:`Refused` when it carries a secret (the voice, the screen,
        the terminal: every path that is not chat)."""
        if self.contains_secret(text):
            self.refused += 1
            raise Refused(f"refused: the {what} contains a secret (or a piece of one); nothing was sent")
        return text

    def check(self, text: str, *, trusted: bool = False) -> str:
        """The text as it may leave in chat; Refused when it must not leave at all."""
        if self.contains_secret(text):
            self.refused += 1
            raise Refused("refused to send a message containing a secret")
        out = clean_text(text, max(self.max_chars * 2, 600))
        out = re.sub(r"@+(?=\w)", "", out)  # no pings: @everyone, @admin, @someone
        if not trusted and self.links != "allow":
            out, _ = strip_links(out, "")
            out = re.sub(r"\s+", " ", out).strip()
        out = clean_text(out, self.max_chars)
        if not out:
            raise Refused("nothing left to send after filtering")
        return out

    def scrub(self, text: str) -> str:
        """``text`` with every secret replaced by ``[redacted]`` (for prompts and payloads)."""
        for secret in self._values():
            text = text.replace(secret, "[redacted]")
        return text
