"""The one child environment (appliance/core/proc.py) and the scrub of `appliance up`'s own
environment (appliance/core/secrets.py), with real child processes: a secret in our
environment reaches no child, whichever way it is started; an exported key leaves what
/proc/<pid>/environ shows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.core import proc


def test_every_way_to_start_a_child_applies_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-reach-a-child")
    monkeypatch.setenv("RETAKE_ACCESS_TOKEN", "rtk_must_not_reach_a_child")
    monkeypatch.setenv("APPLIANCE_PROBE", "kept")
    script = [sys.executable, "-c", "import os; print(sorted(k for k in os.environ if 'KEY' in k or 'TOKEN' in k "
                                    "or k == 'APPLIANCE_PROBE'))"]
    expected = "['APPLIANCE_PROBE']\n"
    assert proc.run(script, capture_output=True, text=True, check=True).stdout == expected
    assert proc.run_tool(script, timeout=30).decode() == expected
    given = dict(os.environ, EXTRA="x")  # a caller's env is filtered too: it can only take away
    assert proc.run_capture(script, timeout=30, env=given).stdout.decode() == expected
    child = proc.popen(script, stdout=subprocess.PIPE, text=True)
    assert child.communicate(timeout=30)[0] == expected


def test_up_takes_an_exported_key_out_of_its_own_proc_environ(tmp_path: Path) -> None:
    """A bare host exports OPENAI_API_KEY: read once, then gone from os.environ and from what
    /proc/<pid>/environ shows, before any child starts."""
    code = ("import os, subprocess; from appliance.core.secrets import scrub_environment; "
            "print(scrub_environment(['OPENAI_API_KEY', 'RETAKE_ACCESS_TOKEN'])); "
            "raw = open('/proc/self/environ', 'rb').read(); "
            "print(b'sk-exported' in raw, b'rtk-exported' in raw, b'tokenfile' in raw, b'KEEP=me' in raw); "
            "print(subprocess.run(['env'], capture_output=True, text=True).stdout.count('-exported'))")
    env = dict(os.environ, OPENAI_API_KEY="sk-exported-0123456789", RETAKE_ACCESS_TOKEN_FILE="/x/tokenfile",
               RETAKE_ACCESS_TOKEN="rtk-exported", KEEP="me")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["['OPENAI_API_KEY', 'RETAKE_ACCESS_TOKEN', 'RETAKE_ACCESS_TOKEN_FILE']",
                                "False False False True", "0"]
