"""Starting as root only as long as needed (appliance/up/privileges.py, appliance/core/users.py),
with real files, users and child processes. Needs root (the image's start, `sudo appliance
up`); ``nobody`` stands for the controller's user and ``appliance-shell`` for the shell's.

The field case of issue 18 first: a ``./state`` owned by root with ``credentials.json`` mode
666 is given to the controller's user and made private, and the shell user cannot read it; what
cannot be done is a ConfigError naming the fix, never a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.core.errors import ConfigError
from appliance.core.secrets import ENV_MOUNT, SecretRef, collect
from appliance.core.users import DEFAULT_SHELL_USER, ShellAccess, can_read, lookup, shell_access
from appliance.up.privileges import TreeUsers, check_secret_files, give_state, prepare_runtime
from tests.support.tree import REPO, short_tmpdir

SHELL = lookup(DEFAULT_SHELL_USER)
NOBODY = lookup("nobody")
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or SHELL is None or NOBODY is None,
                                reason=f"needs root, nobody and the {DEFAULT_SHELL_USER} user (scripts/setup.sh)")


def users() -> TreeUsers:
    assert NOBODY is not None and SHELL is not None
    return TreeUsers(NOBODY, ShellAccess(SHELL))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_root_owned_state_with_a_world_readable_credentials_file_is_given_and_made_private() -> None:
    base = short_tmpdir("privstate-")
    state = base / "state"
    (state / "skill").mkdir(parents=True)
    creds = state / "credentials.json"
    creds.write_text(json.dumps({"access_token": "rtk_field_case"}))
    creds.chmod(0o666)
    (state / "skill" / "skill.md").write_text("x")
    (state / "skill" / "skill.md").chmod(0o644)
    state.chmod(0o755)
    (state / "link").symlink_to("/etc/passwd")  # never followed: /etc/passwd stays root's
    assert can_read(SHELL, creds)  # the field case: anyone could read the token
    give_state(state, users())
    assert (state.stat().st_uid, mode(state)) == (NOBODY.uid, 0o700)
    assert (creds.stat().st_uid, mode(creds)) == (NOBODY.uid, 0o600)
    assert (state / "skill").stat().st_uid == NOBODY.uid and mode(state / "skill" / "skill.md") == 0o600
    assert Path("/etc/passwd").stat().st_uid == 0 and (state / "link").lstat().st_uid == NOBODY.uid
    assert not can_read(SHELL, creds) and not can_read(SHELL, state)


def test_a_state_that_cannot_be_given_holds_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CAP_CHOWN (or a read-only mount): the chown fails; a clear ConfigError, the fix in it."""
    base = short_tmpdir("privstate-")
    (base / "state").mkdir()

    def refused(path: object, uid: int, gid: int) -> None:
        raise PermissionError(1, "Operation not permitted", str(path))
    monkeypatch.setattr(os, "lchown", refused)
    with pytest.raises(ConfigError, match=r"paths\.state_dir: .* cannot be made private .*Operation not permitted") \
            as caught:
        give_state(base / "state", users())
    assert f"chown -R {NOBODY.uid}:{NOBODY.gid}" in str(caught.value) and "CAP_CHOWN" in str(caught.value)


def test_secret_files_the_shell_user_could_read_are_closed_or_refused(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    base = short_tmpdir("privsec-")
    mount = base / "run-secrets"
    mount.mkdir(mode=0o755)
    (mount / "OPENAI_API_KEY").write_text("sk-0123456789abcdef")
    (mount / "OPENAI_API_KEY").chmod(0o644)  # as people write it, and as compose mounts it
    environ = {ENV_MOUNT: str(mount)}
    found = collect([SecretRef("OPENAI_API_KEY")], environ=environ)
    assert can_read(SHELL, mount / "OPENAI_API_KEY")
    check_secret_files(found, users(), environ)  # the mount is closed: only root enters
    assert mode(mount) == 0o700 and not can_read(SHELL, mount / "OPENAI_API_KEY")
    loose = base / "twitch.key"  # a key file of its own, readable by all, where we may not chmod
    loose.write_text("live_abcdef123456")
    loose.chmod(0o644)
    hit = collect([SecretRef("simulcast-tw", file=loose)], environ=environ)
    with pytest.raises(ConfigError, match=r"secret simulcast-tw: .*twitch\.key can be read by the shell user"):
        check_secret_files(hit, users(), environ)
    creds = base / "credentials.json"
    creds.write_text("{}")
    creds.chmod(0o644)
    with pytest.raises(ConfigError, match="the credentials file"):
        check_secret_files({}, users(), environ, credentials=creds)


def test_the_shells_folder_is_made_anew_for_the_shell_user_with_our_group_allowed_in() -> None:
    base = short_tmpdir("privrun-")
    runtime, shell_dir = base / "run", base / "run-shell"
    runtime.mkdir(mode=0o700)
    (runtime / "secrets").mkdir()
    shell_dir.mkdir()
    (shell_dir / "planted").symlink_to("/etc")  # something left beside a runtime folder in /tmp
    # the checkout where the shell user cannot go (a clone in /root, mode 0700)
    checkout = base / "root-only"
    shutil.copytree(REPO / "scripts", checkout / "scripts")
    checkout.chmod(0o700)
    prepare_runtime(runtime, shell_dir, shell_dir / "workspace", users(), scripts=checkout / "scripts",
                    programs=shell_dir / "bin")
    assert (runtime / "secrets").stat().st_uid == NOBODY.uid
    info = shell_dir.stat()
    assert (info.st_uid, info.st_gid, mode(shell_dir)) == (SHELL.uid, NOBODY.gid, 0o2750)
    assert sorted(p.name for p in shell_dir.iterdir()) == ["bin", "workspace"]
    assert (shell_dir / "workspace").stat().st_uid == SHELL.uid and not can_read(SHELL, runtime)
    # the shell session's scripts, copied where the shell user can run them and not change them
    assert sorted(p.name for p in (shell_dir / "bin").iterdir()) == ["lib.sh", "shell-loop.sh", "start-shell.sh"]
    assert (shell_dir / "bin").stat().st_uid == 0 and mode(shell_dir / "bin") == 0o755
    ran = subprocess.run(["bash", "-c", f"test -x {shell_dir}/bin/start-shell.sh && ! test -w {shell_dir}/bin && "
                                        f"! test -x {checkout}/scripts/start-shell.sh && echo ok"],
                         capture_output=True, text=True, timeout=10, user=SHELL.uid, group=SHELL.gid, extra_groups=[])
    assert ran.stdout.strip() == "ok", ran.stdout + ran.stderr


def run_as_nobody(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a Python run as nobody (the system's: a venv's may live where nobody cannot go;
    the modules used here need nothing but the standard library)."""
    return subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True, timeout=60, cwd="/",
                          user=NOBODY.uid, group=NOBODY.gid, extra_groups=[], env={"PYTHONPATH": str(REPO)})


def test_without_root_the_shell_is_off_and_says_why() -> None:
    out = run_as_nobody("from appliance.core.users import *; a = shell_access(current()); print(a.on, a.reason)")
    assert out.stdout.startswith("False the appliance runs as nobody"), out.stdout + out.stderr
    assert "not root" in out.stdout
    off = shell_access(NOBODY, {"APPLIANCE_SHELL_USER": "no-such-user-here"})
    assert not off.on and "no user no-such-user-here" in off.reason and "setup.sh" in off.reason
    assert "root or the appliance's own user" in shell_access(NOBODY, {"APPLIANCE_SHELL_USER": "nobody"}).reason
    assert shell_access(NOBODY, {}).account == SHELL


def test_a_credentials_file_we_may_not_make_private_is_a_clear_error() -> None:
    """The traceback of issue 18 (os.chmod in load_credentials), as the controller's user on a
    file it does not own: a CredentialsError naming the fix."""
    base = short_tmpdir("privcred-")
    creds = base / "credentials.json"
    creds.write_text(json.dumps({"access_token": "rtk_x", "agent_name": "A", "agent_id": "a", "userDbId": "u",
                                 "wallet_address": "w", "ticker": "T"}))
    creds.chmod(0o666)
    code = ("from appliance.retake.credentials import load_credentials\n"
            "from appliance.core.errors import ApplianceError\n"
            f"try:\n    load_credentials({str(creds)!r}, environ={{}})\n"
            "except ApplianceError as exc:\n    print(type(exc).__name__, exc)")
    out = run_as_nobody(code)
    assert out.stdout.startswith("CredentialsError") and "cannot be made private" in out.stdout, out.stdout + out.stderr
    assert "chmod 600" in out.stdout and "Traceback" not in out.stderr


def test_a_command_started_as_root_becomes_the_controllers_user_after_giving_it_the_state(tmp_path: Path) -> None:
    base = short_tmpdir("privcli-")
    state = base / "state"
    state.mkdir(mode=0o755)
    (state / "credentials.json").write_text("{}")
    (state / "credentials.json").chmod(0o666)
    config = base / "appliance.yaml"
    config.write_text(f"agent: {{name: A, description: d, image_url: 'https://example.com/a.png', "
                      f"wallet_address: '11111111111111111111111111111111', ticker: T}}\n"
                      f"paths: {{state_dir: {state}}}\n")
    config.chmod(0o644)
    code = (f"import os\nfrom pathlib import Path\nfrom appliance.up.privileges import become_controller\n"
            f"become_controller(Path({str(config)!r}))\nprint(os.getuid(), os.geteuid(), os.getgid(), os.getgroups())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO,
                         env={**os.environ, "APPLIANCE_USER": "nobody"})
    assert out.stdout.split()[:3] == [str(NOBODY.uid)] * 2 + [str(NOBODY.gid)], out.stdout + out.stderr
    assert state.stat().st_uid == NOBODY.uid and mode(state / "credentials.json") == 0o600
