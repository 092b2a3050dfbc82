"""Two appliances whose containers share the host's network namespace but each have a private
/tmp (`appliance fleet` agents on a local sandbox) both start their X display on the same
number (each sees no lock in its own /tmp): issue 18 item 6. X's abstract sockets live in the
network namespace, so an Xvfb listening there made the second one die ("Cannot establish any
listening sockets") and the container restart on another number ~30 s later. The real
scripts/start-xvfb.sh runs twice here, each in a mount namespace of its own with its own /tmp
(``unshare --mount``, as a container has), on one display number: both must answer."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from appliance.core.files import xauthority_entry
from appliance.media.display import display_taken, release_display, reserve_display
from tests.support.media import stop_process

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("Xvfb"),
                                reason="needs root (a mount namespace per 'container'), unshare and Xvfb")

# A checkout (and its venv) under /tmp, as CI's clone may be, is bound back over the private /tmp.
PRIVATE_TMP = r"""
mount --make-rprivate /
case "$KEEP" in
  /tmp/*) keep=$(mktemp -d /dev/shm/keep-XXXXXX); mount --bind "$KEEP" "$keep"
          mount -t tmpfs tmpfs /tmp
          mkdir -p "$KEEP" && mount --move "$keep" "$KEEP" && rmdir "$keep" ;;
  *) mount -t tmpfs tmpfs /tmp ;;
esac
"""
# In its own mount namespace: a private /tmp (as a container's tmpfs), the cookie written there,
# start-xvfb.sh in the background, and xdpyinfo run inside the same namespace once it answers.
INSIDE = r"""
set -eu
""" + PRIVATE_TMP + r"""
printf '%s' "$COOKIE_B64" | base64 -d > /tmp/xauth && chmod 600 /tmp/xauth
export XAUTHORITY=/tmp/xauth
"$APPLIANCE_HOME/scripts/start-xvfb.sh" > "$LOG" 2>&1 &
for _ in $(seq 50); do
  if xdpyinfo -display "$APPLIANCE_DISPLAY" >/dev/null 2>&1; then echo answers; break; fi
  sleep 0.2
done
sleep "$HOLD"
kill %1 2>/dev/null || true
"""


def free_number() -> int:
    for number in range(600, 700):
        if not display_taken(number):
            return number
    raise AssertionError("no free display number")


@pytest.mark.timeout(60)
def test_two_private_tmps_in_one_network_namespace_both_get_the_same_display() -> None:
    number = free_number()
    procs, logs = [], []
    for name in ("a", "b"):
        log = Path("/dev/shm") / f"test-xvfb-{os.getpid()}-{name}.log"  # outside the private /tmp
        cookie = base64.b64encode(xauthority_entry(number, os.urandom(16))).decode()
        env = dict(os.environ, KEEP=str(REPO), APPLIANCE_HOME=str(REPO), APPLIANCE_DISPLAY=f":{number}",
                   APPLIANCE_WIDTH="320",
                   APPLIANCE_HEIGHT="240", COOKIE_B64=cookie,
                   LOG=str(log), HOLD="4", APPLIANCE_LOG_NAME=f"xvfb-{name}")
        procs.append(subprocess.Popen(["unshare", "--mount", "sh", "-c", INSIDE], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, start_new_session=True))
        logs.append(log)
        time.sleep(1.0)  # the first one listens before the second starts, as in a fleet's `up`
    try:
        outputs = [p.communicate(timeout=30)[0].decode(errors="replace") for p in procs]
    finally:
        for proc in procs:
            stop_process(proc)
    texts = [log.read_text(errors="replace") if log.exists() else "" for log in logs]
    for log in logs:
        log.unlink(missing_ok=True)
    for output, text in zip(outputs, texts, strict=True):
        assert "answers" in output, f"{output}\n{text}"
        assert "Cannot establish any listening sockets" not in text, text
    assert not display_taken(number)  # nothing was left listening on the host's abstract namespace


# A second "container": its own /tmp, the host's network namespace; prints whether it could reserve.
RESERVE_INSIDE = r"""
set -eu
""" + PRIVATE_TMP + r"""
"$PYTHON" -c "import sys; from appliance.media.display import reserve_display as r; print(r(int(sys.argv[1])))" \
  "$NUMBER"
"""

# A foreign X server in its own /tmp on the same network: it tries X's abstract socket too
# (no -nolisten local), then our Xvfb (scripts/start-xvfb.sh) in another private /tmp, and which
# server our client reaches: xdpyinfo's dimensions tell them apart (ours 320x240, foreign 400x300).
FOREIGN = r"""
set -eu
""" + PRIVATE_TMP + r"""
exec Xvfb ":$NUMBER" -screen 0 400x300x24 -ac -nolisten tcp
"""
OURS = INSIDE.replace('if xdpyinfo -display "$APPLIANCE_DISPLAY" >/dev/null 2>&1; then echo answers; break; fi',
                      'if out=$(xdpyinfo -display "$APPLIANCE_DISPLAY" 2>/dev/null); then '
                      'echo "$out" | grep dimensions; break; fi')


@pytest.mark.timeout(60)
def test_a_reserved_number_is_refused_to_another_tmp_on_the_same_network() -> None:
    """The flock in /tmp spans one /tmp only; the abstract placeholder spans the network
    namespace: a fleet's second agent on the host's network cannot reserve the first one's number
    (before the placeholder it could, and both trees used one number)."""
    import sys
    number = free_number()
    assert reserve_display(number)
    try:
        env = dict(os.environ, KEEP=str(REPO), PYTHON=sys.executable, NUMBER=str(number), PYTHONPATH=str(REPO))
        out = subprocess.run(["unshare", "--mount", "sh", "-c", RESERVE_INSIDE], env=env, capture_output=True,
                             text=True, timeout=30)
        assert out.stdout.strip() == "False", out.stdout + out.stderr
        assert not display_taken(number)  # our own reservation is not "taken" for us
    finally:
        release_display(f":{number}")
    out = subprocess.run(["unshare", "--mount", "sh", "-c", RESERVE_INSIDE], env=env, capture_output=True,
                         text=True, timeout=30)
    assert out.stdout.strip() == "True", out.stdout + out.stderr  # released: free again


@pytest.mark.timeout(60)
def test_our_clients_never_reach_a_foreign_server_on_the_abstract_name() -> None:
    """X clients try the abstract socket first. Without the placeholder, a foreign X server that
    binds ``@/tmp/.X11-unix/X<N>`` on the same network (a developer's, a test's, an unprivileged
    one) receives our encoder's connection: another screen captured, or our cookie refused (seen in
    the soak: "Invalid MIT-MAGIC-COOKIE-1 key", five stream starts for one encoder kill)."""
    number = free_number()
    assert reserve_display(number)
    log = Path("/dev/shm") / f"test-xvfb-{os.getpid()}-ours.log"
    foreign = subprocess.Popen(["unshare", "--mount", "sh", "-c", FOREIGN],
                               env=dict(os.environ, KEEP=str(REPO), NUMBER=str(number)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(1.0)  # the foreign server is up (or gave up on the abstract name) before ours
        cookie = base64.b64encode(xauthority_entry(number, os.urandom(16))).decode()
        env = dict(os.environ, KEEP=str(REPO), APPLIANCE_HOME=str(REPO), APPLIANCE_DISPLAY=f":{number}",
                   APPLIANCE_WIDTH="320",
                   APPLIANCE_HEIGHT="240", COOKIE_B64=cookie, LOG=str(log), HOLD="0", APPLIANCE_LOG_NAME="xvfb-ours")
        ours = subprocess.run(["unshare", "--mount", "sh", "-c", OURS], env=env, capture_output=True, text=True,
                              timeout=30)
        assert "320x240 pixels" in ours.stdout, (ours.stdout, ours.stderr, log.read_text(errors="replace"))
    finally:
        stop_process(foreign)
        release_display(f":{number}")
        log.unlink(missing_ok=True)
