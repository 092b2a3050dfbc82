"""`appliance doctor` before `up`, as a real command against the sandbox and a fake
OpenAI-compatible server: the brain is reached, its key accepted and the model answers (or the
row says which of the three failed); the display and sink are "started by up", not failures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.chat import FakeOpenAI
from tests.support.data import WALLET
from tests.support.live import make_agent

REPO = Path(__file__).resolve().parents[2]
KEY = "sk-doctor-test-key"


def doctor(config: Path, **env: str) -> tuple[int, str]:
    import os
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("RETAKE_", "OPENAI_"))}
    result = subprocess.run([sys.executable, "-m", "appliance", "doctor", "--config", str(config)],
                            capture_output=True, text=True, timeout=120, cwd=REPO, env={**environ, **env})
    return result.returncode, result.stdout + result.stderr


def row(out: str, name: str) -> str:
    found = [line for line in out.splitlines() if f"  {name} " in f"{line} "]
    assert found, f"no {name!r} row in:\n{out}"
    return found[0]


def write_config(tmp_path: Path, sb, agent: dict, llm_url: str) -> Path:
    config = tmp_path / "appliance.yaml"
    config.write_text(yaml.safe_dump({
        "agent": {"name": agent["name"], "description": "d", "image_url": "https://example.com/a.png",
                  "wallet_address": WALLET, "ticker": "DOC"},
        "retake": {"base_url": sb.base_url, "sandbox": True, "backoff_s": 0.05, "backoff_max_s": 0.2},
        "paths": {"credentials": str(agent["cred_path"]), "state_dir": str(tmp_path / "state")},
        "chat": {"responder": "llm", "llm": {"base_url": llm_url, "model": "doctor-model", "api_key_env": "DOC_KEY"}},
    }))
    return config


def test_doctor_before_up_checks_the_brain_and_marks_what_up_starts(sandbox, tmp_path: Path) -> None:
    agent = make_agent(sandbox, tmp_path, "DoctorAgent")
    model = FakeOpenAI(answer=lambda body: "ready", key=KEY)
    try:
        config = write_config(tmp_path, sandbox, agent, model.url)
        code, out = doctor(config, DOC_KEY=KEY)
        assert code == 0, out
        assert row(out, "display").startswith("up ") and "started by `appliance up`" in row(out, "display")
        assert row(out, "sink stream").startswith("up ")
        assert row(out, "brain llm").startswith("ok ") and "'ready'" in row(out, "brain llm"), out
        assert model.requests and model.requests[-1]["body"]["model"] == "doctor-model"
        assert "(2 started by `appliance up`)" in out.splitlines()[-1]

        code, out = doctor(config, DOC_KEY="sk-wrong")  # key refused
        assert code == 1 and row(out, "brain llm").startswith("FAIL") and "refused the key (HTTP 401)" in out, out
        code, out = doctor(config)  # no key at all: said too
        assert code == 1 and "no key in $DOC_KEY" in row(out, "brain llm"), out
    finally:
        model.close()
    code, out = doctor(config, DOC_KEY=KEY)  # the server is gone: unreachable
    assert code == 1 and "does not answer" in row(out, "brain llm"), out
