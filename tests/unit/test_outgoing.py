"""The one outgoing filter: a secret, a piece of one or one reversed never leaves; ordinary
text passes untouched."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.core.outgoing import OutgoingFilter, Refused, Secrets

TOKEN = "rtk_9a2e37f8485cde8ce4f42807d23d33247b05c8890f533b50"
BEARER = "q8Zr-2xW_pL0oVnYt4sK7eHbM1cJ9aGfD3uRiE6hTkA"


def guard() -> OutgoingFilter:
    return OutgoingFilter(Secrets(TOKEN, BEARER))


@pytest.mark.parametrize("start", range(0, len(TOKEN) - 16 + 1))
def test_every_16_character_piece_of_the_token_is_caught_at_every_position(start: int) -> None:
    """17.7: the old check looked at windows every 4th position; a slice starting anywhere
    else passed."""
    piece = TOKEN[start:start + 16]
    assert guard().contains_secret(f"here is something: {piece} ok")


def test_the_reversed_token_and_a_reversed_piece_are_caught() -> None:
    assert guard().contains_secret("backwards " + TOKEN[::-1])
    assert guard().contains_secret("a piece " + TOKEN[5:25][::-1] + " of it")
    assert guard().contains_secret(" ".join(BEARER[::-1]))  # spaced out, reversed


def test_separators_case_and_zero_width_characters_do_not_hide_it() -> None:
    spaced = "\u200b".join(TOKEN.upper())
    assert guard().contains_secret(spaced)
    assert guard().contains_secret("-".join(BEARER[3:30]))


def test_guard_refuses_without_naming_the_secret_and_passes_ordinary_text() -> None:
    f = guard()
    with pytest.raises(Refused) as refused:
        f.guard(f"say {TOKEN[10:30]}", what="speech")
    assert TOKEN[10:30] not in str(refused.value) and "speech" in str(refused.value)
    ordinary = "Thanks for the tip, alice! Let's build a parser."
    assert f.guard(ordinary) == ordinary
    assert f.refused == 1


def test_secrets_are_read_from_their_sources_at_check_time() -> None:
    later: list[str] = []
    f = OutgoingFilter(Secrets(sources=[lambda: later, lambda: 1 / 0]))  # a broken source harms nothing
    assert not f.contains_secret(TOKEN)
    later.append(TOKEN)  # the credentials arrive once the lifecycle has read them
    assert f.contains_secret(TOKEN[20:40])
    assert repr(Secrets(TOKEN, "short")) == "Secrets(1 values)"  # short values are no secrets; no value shown


def test_chat_policy_on_top_pings_links_length() -> None:
    f = OutgoingFilter(Secrets(TOKEN), max_chars=40, links="strip")
    assert f.check("@everyone look at evil.example.com now") == "everyone look at now"
    with pytest.raises(Refused):
        f.check("ok " + TOKEN[::-1])
    assert f.scrub(f"token={TOKEN}") == "token=[redacted]"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_text_without_a_16_character_run_of_the_secret_passes(text: str) -> None:
    """No false alarm on text that shares no 16-letter run with a secret (the secrets are random)."""
    f = guard()
    if not f.contains_secret(text):
        assert f.guard(text) == text
