"""The skill version comes from the platform: it is logged, printed and notified, so it is
cleaned first (defect 8) — escape sequences and newlines could forge log lines or drive the
operator's terminal."""

from __future__ import annotations

import json

from appliance.retake.settings import RetakeConfig
from appliance.retake.skill import check_skill


def test_a_hostile_skill_version_is_cleaned_before_anyone_sees_it(sandbox, tmp_path):
    cfg = RetakeConfig(base_url=sandbox.base_url, sandbox=True, timeout_s=5)
    sandbox.settings(skill_version="9\x1b[2J\x1b]0;own\x07\nERROR x")  # clears a screen, titles it, forges a line
    check = check_skill(cfg, tmp_path)
    line = check.line()
    assert check.outcome == "changed" and check.version == "9 ERROR x"
    assert "\x1b" not in line and "\n" not in line and "\x07" not in line
    assert json.loads((tmp_path / "skill.json").read_text())["version"] == "9 ERROR x"
