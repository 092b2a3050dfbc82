"""`appliance doctor`'s rows with injected fakes: before `up` the display and sink are marked as
started by it (not failed), fonts are checked by the family fontconfig really gives, pinned
ports are checked, and the summary does not count the rows `up` will start."""

from __future__ import annotations

from pathlib import Path

from appliance.config import parse_config
from appliance.control.where import Where
from appliance.doctor import Check, check_fonts, check_tree, summary
from tests.support.data import WALLET

AGENT = {"name": "DocAgent", "description": "d", "image_url": "https://example.com/a.png",
         "wallet_address": WALLET, "ticker": "DOC"}


def settings(tmp_path: Path, **sections):
    return parse_config({"agent": AGENT, "paths": {"state_dir": str(tmp_path / "state")}, **sections}, "t.yaml")


def test_before_up_display_and_sink_are_started_by_up_not_failed(tmp_path: Path) -> None:
    rows = check_tree(settings(tmp_path), None)
    assert [(r.name, r.verdict) for r in rows] == [("display", "up"), ("sink stream", "up")]
    assert all("appliance up" in r.detail for r in rows)
    silent = check_tree(settings(tmp_path, stream={"audio_source": "silent"}), None)
    assert [r.name for r in silent] == ["display"]
    held = check_tree(settings(tmp_path), Where(path=tmp_path / "control.json", url="http://127.0.0.1:1", token=None,
                                                display=None, held=True, data={}))
    assert {r.verdict for r in held} == {"up"} and "holding" in held[0].detail


def test_fonts_are_checked_by_what_fontconfig_resolves() -> None:
    have = {"Noto Sans": "Noto Sans", "Noto Sans CJK SC": "Noto Sans", "Noto Color Emoji": "Noto Color Emoji",
            "Monospace": "DejaVu Sans Mono"}
    rows = {r.name: r for r in check_fonts(lambda family: have[family])}
    assert rows["font Noto Sans"].verdict == "ok" and rows["font Monospace"].verdict == "ok"
    cjk = rows["font Noto Sans CJK SC"]
    assert cjk.verdict == "FAIL" and "falls back to Noto Sans" in cjk.detail
    assert cjk.fix == "apt-get install fonts-noto-cjk"


def test_the_summary_counts_failures_but_not_what_up_starts() -> None:
    rows = [Check("a", "ok", ""), Check("display", "up", ""), Check("sink", "up", "")]
    assert summary(rows) == (0, "doctor: all 1 checks ok (2 started by `appliance up`)")
    assert summary([*rows, Check("b", "FAIL", "")])[0] == 1


def test_the_brain_row_follows_chat_brain_engine(tmp_path: Path) -> None:
    """The row names the configured brain (the default host brain reaches nothing: the doctor of a
    default config never asks api.openai.com); a command brain's program must exist."""
    from appliance.doctor import check_brain
    assert [(r.name, r.verdict) for r in check_brain(settings(tmp_path), {})] == [("brain host", "ok")]
    external = check_brain(settings(tmp_path, chat={"brain": {"engine": "external"}}), {})
    assert [(r.name, r.verdict) for r in external] == [("brain external", "ok")]
    missing = check_brain(settings(tmp_path, chat={"brain": {"engine": "command", "argv": ["no-such-brain-x"]}}), {})
    assert missing[0].verdict == "FAIL" and "no-such-brain-x not found" in missing[0].detail
    assert missing[0].fix == "fix chat.brain.argv[0]"
    older = check_brain(settings(tmp_path, chat={"responder": "command", "command": {"argv": ["sh"]}}), {})
    assert older[0].name == "brain command" and older[0].verdict == "ok"
