#!/usr/bin/env bash
# The test command: sets up what is missing (`scripts/setup.sh --test`: the host's packages and
# the tests' own), then runs the whole suite with real Xvfb, PulseAudio, FFmpeg, nginx-rtmp and
# the sandbox. Container tests run when a
# Docker-compatible engine answers (CI makes one; see .ci/run), else they skip and say why.
# Extra arguments go to pytest (e.g. scripts/test.sh -k sandbox).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
set +e
.venv/bin/python -m pytest -ra "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "test: pytest collected no tests — that is a failure here" >&2
  exit 1
fi
exit "$rc"
