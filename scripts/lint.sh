#!/usr/bin/env bash
# The code's shape, checked (configuration in pyproject.toml; each gate must stay at zero):
#   ruff         lint: ruff check appliance tests bench scripts setup.py
#   mypy         types: the appliance package (pyproject's [tool.mypy] files)
#   lint-imports the floors: imports run downward only (docs/architecture.md)
# Runs all three and fails if any fails. Takes a few seconds (mypy's cache makes reruns fast).
# Uses the venv's tools (scripts/setup.sh makes .venv); VENV=... points elsewhere.
set -uo pipefail
cd "$(dirname "$0")/.."
bin="${VENV:-.venv}/bin"
failed=()
gate() {  # NAME COMMAND...: one line when it passes, the tool's own report when it fails
  local name="$1" out; shift
  if out=$("$@" 2>&1); then echo "lint: $name ok"; else echo "$out"; failed+=("$name"); fi
}
gate ruff "$bin/ruff" check --quiet appliance tests bench scripts setup.py
gate mypy "$bin/mypy"
gate import-linter "$bin/lint-imports"
if [ ${#failed[@]} -gt 0 ]; then
  echo "lint: FAILED: ${failed[*]}" >&2
  exit 1
fi
