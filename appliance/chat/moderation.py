"""Moderation and safety: what viewer text may reach the brain, screen and voice; what may leave.

In (:class:`Moderator`, before anything else sees a message):
  * a blocklist (names, platform user ids, wallets) and blocked words: the message is ignored;
  * a link policy (``strip``: each link becomes ``[link]``; ``block``: ignored; ``allow``);
  * a length cap, and a per-viewer rate limit (over it: read and remembered, never answered);
  * names neutralised for echoing (:meth:`Moderator.display_name`): no ``@``, no links or
    domains, bounded, and a name posing as the agent or as staff (``admin``, ``retake``, ...)
    — compared after folding case, accents and look-alike characters — becomes ``viewer-xxxx``.

Out: :class:`appliance.core.outgoing.OutgoingFilter`, the one filter of every outgoing word
(re-exported here with :class:`Refused` and :func:`strip_links` for the chat's modules): it
refuses a text that carries a secret or a piece of one; on the chat path it also drops ``@``
pings, applies the link policy to brain output and cuts to ``max_reply_chars``.
"""

from __future__ import annotations

import hashlib
import re
import time
import unicodedata
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from ..core.outgoing import OutgoingFilter, Refused
from ..core.sanitize import LINK, clean_text, strip_links
from ..retake.normalize import Comment
from .settings import ModerationConfig

_STAFF = ("admin", "administrator", "moderator", "mod", "retake", "retaketv", "system", "official",
          "support", "staff", "owner", "streamer", "host")
_STAFF_PREFIXES = ("admin", "moderator", "retake", "official", "support")
# look-alikes folded to the letter they imitate (after NFKC and casefold)
_CONFUSABLE = str.maketrans({"0": "o", "1": "l", "i": "l", "|": "l", "!": "l", "3": "e", "4": "a",
                             "@": "a", "5": "s", "$": "s", "7": "t", "8": "b", "9": "g",
                             "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "х": "x", "у": "y",
                             "і": "l", "ӏ": "l", "ο": "o", "α": "a", "ν": "v", "ι": "l"})


def skeleton(text: str) -> str:
    """A name folded for comparison: NFKC, case, accents, look-alikes; letters and digits only."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch)).translate(_CONFUSABLE)
    return re.sub(r"[^0-9a-z]", "", folded)


_STAFF_PREFIX_SKELETONS = tuple(skeleton(word) for word in _STAFF_PREFIXES)
_STAFF_NAME = re.compile(r"(?:" + "|".join(skeleton(word) for word in _STAFF) + r")\d*")


@dataclass(frozen=True)
class Verdict:
    """What moderation decided about one incoming message."""

    action: str   # "ok", "limited" (read, not answered), "blocked" (ignored)
    name: str     # the neutralised display name
    text: str     # the text as the brain, the screen and the voice may see it
    reason: str = ""


class Moderator:
    """Incoming side: blocklist, links, length, per-viewer rate, names."""

    def __init__(self, cfg: ModerationConfig, *, agent_name: str,
                 clock: Callable[[], float] = time.monotonic, max_viewers_tracked: int = 10_000) -> None:
        self.cfg = cfg
        self.agent_name = agent_name
        self._agent = skeleton(agent_name)
        self._blocked = {b.casefold() for b in cfg.blocklist}
        self._words = [w.casefold() for w in cfg.blocked_words]
        self.clock = clock
        self._recent: OrderedDict[str, deque[float]] = OrderedDict()
        self._max_tracked = max_viewers_tracked

    def display_name(self, comment: Comment) -> str:
        """The name as the agent may echo it (greetings, the screen, the voice, the feed)."""
        tag = "viewer-" + hashlib.sha256((comment.wallet_address or comment.user_id or comment.username)
                                         .encode("utf-8", "replace")).hexdigest()[:4]
        name, _ = strip_links(clean_text(comment.username, 200), "")
        name = re.sub(r"[^\w .'…-]", "", name.replace("@", "")).strip(" .'…-")  # … : a short wallet
        name = re.sub(r"\s+", " ", name)[: self.cfg.max_name_chars].strip()
        folded = skeleton(name)
        if not folded:
            return tag
        if self._agent and self._agent in folded:
            return tag  # poses as the agent
        if folded.startswith(_STAFF_PREFIX_SKELETONS) or _STAFF_NAME.fullmatch(folded):
            return tag  # poses as staff
        return name

    def _blocked_by(self, comment: Comment) -> str:
        for value in (comment.username, comment.user_id, comment.wallet_address, comment.fid):
            if value and value.casefold() in self._blocked:
                return "blocklist"
        text = comment.text.casefold()
        if any(word in text for word in self._words):
            return "blocked word"
        return ""

    def _over_rate(self, key: str) -> bool:
        now = self.clock()
        times = self._recent.pop(key, None) or deque()
        while times and now - times[0] > 60.0:
            times.popleft()
        times.append(now)
        self._recent[key] = times
        while len(self._recent) > self._max_tracked:
            self._recent.popitem(last=False)
        return len(times) > self.cfg.per_viewer_per_minute

    def inbound(self, comment: Comment, key: str) -> Verdict:
        """Decide about one viewer message (``key``: the viewer's memory key)."""
        name = self.display_name(comment)
        reason = self._blocked_by(comment)
        text = clean_text(comment.text, self.cfg.max_message_chars)
        if not reason and self.cfg.links != "allow":
            text, links = strip_links(text)
            if links and self.cfg.links == "block":
                reason = "link"
        if reason:
            return Verdict("blocked", name, "", reason)
        if self._over_rate(key):
            return Verdict("limited", name, text, "per-viewer rate limit")
        return Verdict("ok", name, text)


__all__ = ["LINK", "Moderator", "OutgoingFilter", "Refused", "Verdict", "skeleton", "strip_links"]
