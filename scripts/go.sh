#!/usr/bin/env bash
# The newcomer's first command: set everything up, then run the main job.
#   scripts/go.sh                              rehearse against the local sandbox (default)
#   scripts/go.sh --seconds 60                 rehearse for a minute, then stop by itself
#   scripts/go.sh --live --config FILE         go live on retake.tv for real (appliance up)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
live=0; config=""; rest=()
while [ $# -gt 0 ]; do
  case "$1" in
    --live) live=1 ;;
    --config) config="$2"; shift ;;
    *) rest+=("$1") ;;
  esac
  shift
done
if [ "$live" = 1 ]; then
  exec .venv/bin/appliance up --config "${config:-appliance.yaml}" "${rest[@]}"
fi
if [ -z "$config" ]; then config=appliance.yaml; [ -f "$config" ] || config=config.example.yaml; fi
exec .venv/bin/appliance rehearse --config "$config" "${rest[@]}"
