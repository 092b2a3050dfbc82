"""`appliance init`: each answer checked as registration would check it, the file written from
config.example.yaml with its comments kept and values quoted."""

from __future__ import annotations

import pytest
import yaml

from appliance.config import load_config
from appliance.core.errors import ConfigError, InputError
from appliance.init import check_answer, render, run_init
from tests.support.data import REPO


def test_init_checks_each_answer_as_register_would_and_writes_a_loadable_file(tmp_path):
    assert check_answer("ticker", "ELEVENCHARS") == "at most 10 characters"
    assert check_answer("name", "has space") and check_answer("image_url", "http://x/a.png")
    assert "base58" in check_answer("wallet_address", "0OIl")
    assert check_answer("name", "Good_Agent-1") is None
    answers = iter(["bad name!", "Good_Agent-1", "Builds tools \"live\"", "http://insecure/a.png",
                    "https://example.com/a.png", "0OIl", "11111111111111111111111111111111", "ELEVENCHARS", "GOOD"])
    asked = []
    path = tmp_path / "appliance.yaml"
    assert run_init(path, answers={}, read=lambda q: asked.append(q) or next(answers)) == 0
    settings = load_config(path)
    assert settings.agent.name == "Good_Agent-1" and settings.agent.description == 'Builds tools "live"'
    assert settings.agent.ticker == "GOOD" and len(asked) == 9  # every bad answer asked again
    text = path.read_text()
    assert "# retake.tv broadcast appliance" in text and "max_restarts_per_hour" in text  # the example's comments
    with pytest.raises(ConfigError, match="already exists"):
        run_init(path, answers={}, read=lambda q: "")
    with pytest.raises(InputError, match="--ticker: "):
        run_init(tmp_path / "b.yaml", answers={"name": "A", "description": "d", "image_url": "https://e.com/a.png",
                                               "wallet": "11111111111111111111111111111111", "ticker": "!!"})


def test_init_render_keeps_comments_and_quotes_values():
    template = (REPO / "config.example.yaml").read_text()
    out = render(template, {"name": "X", "description": "a: b # not a comment", "image_url": "https://e.com/a.png",
                            "wallet_address": "11111111111111111111111111111111", "ticker": "T"})
    data = yaml.safe_load(out)
    assert data["agent"]["description"] == "a: b # not a comment"
    assert out.count("\n") == template.count("\n")
