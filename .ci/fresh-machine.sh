#!/usr/bin/env bash
# The README's two commands on a machine nobody set up: a fresh `debian:bookworm` container (the
# base image shared/tools/container-engine.sh builds: debootstrap's minbase, nothing else), in
# its own network namespace, on a clean clone of this checkout's HEAD (what is committed, not
# what lies around in the folder). Inside, as root, as a new user would:
#
#   scripts/go.sh --seconds N     set-up (the host's packages and the venv), then a short rehearsal
#   scripts/test.sh TESTS         set-up --test, then the tests that run each external program
#                                 (TEST_REQUIRE_ALL=1: a missing program fails instead of skipping),
#                                 the unit tier among them: its scan of the programs the code runs
#                                 then reads the dpkg database of a machine nobody touched by hand
#
# A missing install step fails here instead of on a user's machine. Each part's time is printed
# (`fresh: <part> <seconds> s`). Needs podman (CI makes it with the shared engine script).
#   bash .ci/fresh-machine.sh              the default tests (FRESH_TESTS)
#   bash .ci/fresh-machine.sh -k voice     other pytest arguments instead
set -euo pipefail
cd "$(dirname "$0")/.."
REHEARSAL_S=${FRESH_REHEARSAL_SECONDS:-30}
IMAGE=${FRESH_IMAGE:-docker.io/library/debian:bookworm}
# The unit tier's scan checks that every program the code runs is installed (the dpkg database of
# a machine nobody touched); then one test per family of programs runs them: FFmpeg, Xvfb and
# PulseAudio (test_media); `appliance doctor` before and after `up` (every binary, fonts,
# encoders, the display and the sink); the bare process tree (openbox, xterm, tmux, xwininfo);
# Chromium + chromedriver + tesseract (the console); git and kubectl (the
# wheel and the Kubernetes render). The rehearsal itself is go.sh's (nginx-rtmp, espeak-ng).
FRESH_TESTS=(-m "not container"
  tests/unit tests/integration/test_media.py tests/integration/test_doctor.py tests/e2e/test_doctor_up.py
  "tests/e2e/test_process_tree.py::test_every_program_runs"
  "tests/e2e/test_process_tree.py::test_content_window_is_on_screen"
  "tests/e2e/test_operator.py::test_console_in_a_browser"
  "tests/e2e/test_deploy.py::test_the_wheel_build_takes_every_file_of_the_tree_folders_new_ones_too"
  "tests/e2e/test_deploy.py::test_kubernetes_render_is_committed_renders_and_validates")
[ $# -gt 0 ] && FRESH_TESTS=("$@")

command -v podman >/dev/null || { echo "fresh: podman is not installed (bash shared/tools/container-engine.sh)" >&2; exit 1; }
podman image exists "$IMAGE" || { echo "fresh: no $IMAGE image (bash shared/tools/container-engine.sh builds it)" >&2; exit 1; }
work=$(mktemp -d /tmp/fresh-XXXXXX)
name="fresh-$$"
cleanup() { podman rm -f -t 5 "$name" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
git clone -q --no-local . "$work/retake"
echo "fresh: a clean clone of $(git rev-parse --short HEAD) in a new $IMAGE container"

tests=$(printf '%q ' "${FRESH_TESTS[@]}")
# shellcheck disable=SC2016  # expanded inside the container
inside='
set -euo pipefail
t0=$(date +%s)
part() { local now; now=$(date +%s); echo "fresh: $1 $((now - t0)) s"; t0=$now; }
bash scripts/go.sh --seconds '"$REHEARSAL_S"' >/tmp/go.log 2>&1 || { tail -n 40 /tmp/go.log; echo "fresh: scripts/go.sh failed"; exit 1; }
grep -E "setup:|rehearsal:|-> live|ERROR|Traceback" /tmp/go.log || true
grep -q -- "-> live" /tmp/go.log || { tail -n 40 /tmp/go.log; echo "fresh: the rehearsal never went live"; exit 1; }
grep -qE "rehearsal: recording .* \([1-9][0-9]{4,} bytes\)" /tmp/go.log || { echo "fresh: the rehearsal recorded nothing"; exit 1; }
part "go.sh (set-up + rehearsal of '"$REHEARSAL_S"' s)"
TEST_REQUIRE_ALL=1 bash scripts/test.sh -p no:cacheprovider --durations=8 '"$tests"'
part "test.sh (set-up --test + tests)"
'
started=$(date +%s)
status=0
podman run --rm --name "$name" --network bridge --shm-size 512m \
  -v "$work/retake:/root/retake" -w /root/retake -e CI=true -e TERM=dumb \
  "$IMAGE" bash -c "$inside" || status=$?
echo "fresh: total $(( $(date +%s) - started )) s, exit status $status"
exit "$status"
