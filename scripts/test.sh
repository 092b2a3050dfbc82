#!/usr/bin/env bash
# The test command: sets up what is missing (`scripts/setup.sh --test`: the host's packages and
# the tests' own), checks the code's shape (scripts/lint.sh: ruff, mypy, import-linter), then
# runs the whole suite with real Xvfb, PulseAudio, FFmpeg, nginx-rtmp and the sandbox.
# Container tests run when a Docker-compatible engine answers (CI makes one; see .ci/run), else
# they skip and say why.
#   scripts/test.sh              everything (about 13 minutes on 2 cores)
#   scripts/test.sh --fast       the gates and the unit tier only (no processes: seconds)
#   scripts/test.sh -k sandbox   extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
fast=0; args=()
for arg in "$@"; do
  if [ "$arg" = --fast ]; then fast=1; else args+=("$arg"); fi
done
bash scripts/setup.sh --test
bash scripts/lint.sh
tier=()
[ "$fast" = 1 ] && tier=(tests/unit -m unit)
set +e
.venv/bin/python -m pytest -ra "${tier[@]}" "${args[@]}"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "test: pytest collected no tests — that is a failure here" >&2
  exit 1
fi
exit "$rc"
