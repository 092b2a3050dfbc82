#!/usr/bin/env bash
# Installs everything the appliance and its tests need on a Debian bookworm host (as root, or
# with sudo): Debian's media packages, then a venv at .venv with the package and test tools.
# Idempotent: a second run only checks. Prints one line per step.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '%s setup: %s\n' "$(date -u +%H:%M:%S)" "$*"; }

PACKAGES=(xvfb openbox xterm tmux dtach x11-utils xdotool pulseaudio pulseaudio-utils ffmpeg scrot espeak-ng
          supervisor nginx libnginx-mod-rtmp python3-venv tini
          libcairo2 libpango-1.0-0 libpangocairo-1.0-0 libxcb1 fonts-noto-core fonts-noto-cjk
          fonts-noto-color-emoji tesseract-ocr kubectl chromium chromium-driver)
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages present"
fi

# The on-screen shell's own user (docs/security.md): `appliance up` run as root starts that shell
# as this user, which cannot read the appliance's state, runtime folder, secrets or processes.
# Without it (or without root) the shell pane is off and says why.
SHELL_USER=${APPLIANCE_SHELL_USER:-appliance-shell}
if id "$SHELL_USER" >/dev/null 2>&1; then
  say "user $SHELL_USER present"
elif [ "$(id -u)" -eq 0 ]; then
  say "creating the on-screen shell's user $SHELL_USER"
  useradd --system --user-group --create-home --home-dir "/var/lib/$SHELL_USER" --shell /bin/bash "$SHELL_USER"
else
  say "not root: no user $SHELL_USER (the on-screen shell stays off; run this as root to create it)"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($PY --version)"
  $PY -m venv .venv
fi
if ! .venv/bin/python -c 'import appliance, pytest, socketio, aiohttp, pangocairocffi, xcffib, importlinter, mypy' >/dev/null 2>&1 \
   || [ pyproject.toml -nt .venv/.installed ]; then
  say "installing the appliance and test tools into .venv"
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[test,lint]'
  touch .venv/.installed
else
  say "venv up to date"
fi
say "ready: .venv/bin/appliance --help"
