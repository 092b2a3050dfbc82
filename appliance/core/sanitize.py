"""Make untrusted text (chat, API answers, config) safe for a terminal, overlay, voice or prompt.

Viewer text must never drive the content window's terminal: escape sequences (CSI, OSC,
DCS, ...), C0/C1 control characters, and bidi overrides are removed, whitespace runs are
folded and the result is cut to a bound. :func:`strip_links` takes links out (a viewer's
message, a brain's reply).
"""

from __future__ import annotations

import re
import unicodedata

# ESC-introduced sequences: CSI (ESC [ ... final), OSC/DCS/SOS/PM/APC (ESC ] ... BEL|ST), 2-char.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"          # CSI
    r"|\x1b[\]PX^_].*?(?:\x07|\x1b\\|$)"  # OSC, DCS, SOS, PM, APC up to BEL or ST
    r"|\x1b[@-Z\\-_]"                    # other two-character escapes
    r"|\x9b[0-?]*[ -/]*[@-~]",           # 8-bit CSI
    re.DOTALL,
)
_BIDI = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"))
_WS = re.compile(r"\s+")
_TLDS = ("com|net|org|io|tv|gg|xyz|me|co|app|dev|ly|link|sh|to|ru|cn|info|biz|site|online|live|"
         "fun|club|top|ai|so|fm|cc|us|uk|de|fr|eu|in|be|it|nl|pw|ws|lol|sol|eth|cash|money|win")
LINK = re.compile(
    r"(?i)(?:\b[a-z][a-z0-9+.-]{1,15}://\S+"          # scheme://...
    r"|\bwww\.\S+"                                     # www....
    r"|\b[a-z0-9-]{1,63}(?:\s*(?:\.|\(dot\)|\[dot\])\s*[a-z0-9-]{1,63})*"
    r"\s*(?:\.|\(dot\)|\[dot\])\s*(?:" + _TLDS + r")\b(?:/\S*)?)")


def clean_text(text: object, max_chars: int = 500) -> str:
    """One line of printable text, at most ``max_chars`` characters (an ellipsis marks a cut)."""
    value = str(text) if text is not None else ""
    value = _ESCAPES.sub("", value)
    value = value.translate(_BIDI)
    value = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in value)
    value = _WS.sub(" ", value).strip()
    if len(value) > max_chars:
        value = value[: max(0, max_chars - 1)].rstrip() + "…"
    return value


def clean_name(text: object, max_chars: int = 32) -> str:
    """A viewer name: printable, no spaces at the ends, never empty."""
    return clean_text(text, max_chars) or "viewer"


def strip_links(text: str, placeholder: str = "[link]") -> tuple[str, int]:
    """``text`` with every link replaced; and how many there were."""
    return LINK.subn(placeholder, text)
