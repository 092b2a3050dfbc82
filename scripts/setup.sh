#!/usr/bin/env bash
# Installs what the appliance needs on a Debian bookworm host (as root, or with sudo):
#
#   scripts/setup.sh          a streaming host: Debian's media packages, then a venv at .venv
#                             with the appliance (what `scripts/go.sh` and `appliance up` run)
#   scripts/setup.sh --test   the same, plus what only the tests add: OCR, a browser and its
#                             driver, git, and the test and lint tools in the venv
#
# Idempotent: a second run only checks. Prints one line per step. Every program the code, the
# scripts and the tests run comes from one of the lists below (or Debian's base system, or the
# venv): tests/unit/test_setup_programs.py checks that against the source.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '%s setup: %s\n' "$(date -u +%H:%M:%S)" "$*"; }

test=0
for arg in "$@"; do
  case "$arg" in
    --test) test=1 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

# What a streaming host runs: the process tree, the encoder, the voice, the sandbox's ingest.
HOST_PACKAGES=(xvfb openbox xterm tmux dtach x11-utils pulseaudio pulseaudio-utils ffmpeg scrot espeak-ng
               supervisor nginx libnginx-mod-rtmp python3-venv tini
               libcairo2 libpango-1.0-0 libpangocairo-1.0-0 libxcb1
               fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji)
# What only the tests add: OCR of decoded frames, the console in a real browser, window control
# in the media tests, `git ls-files` in the packaging test.
TEST_PACKAGES=(tesseract-ocr chromium chromium-driver xdotool git)
# Installed when an apt source offers it: Debian bookworm has no kubectl new enough for the
# rendered kustomize overlays (its kubernetes-client is 1.20), Kubernetes' own apt repository
# has. Without it the one test that renders them skips, saying so.
TEST_OPTIONAL=(kubectl)

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
wanted=("${HOST_PACKAGES[@]}")
[ "$test" = 1 ] && wanted+=("${TEST_PACKAGES[@]}")
missing=()
for p in "${wanted[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
updated=0
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq; updated=1
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages present"
fi
if [ "$test" = 1 ]; then
  for p in "${TEST_OPTIONAL[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 && continue
    [ "$updated" = 1 ] || { $SUDO apt-get update -qq; updated=1; }
    if [ -n "$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" {print $2}')" ]; then
      say "installing $p"
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$p" >/dev/null
    else
      say "$p: no apt source offers it (Kubernetes' apt repository does); its test will skip"
    fi
  done
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
if [ "$test" = 1 ]; then
  extras='.[test,lint]'; marker=.venv/.installed-test
  probe='import appliance, pangocairocffi, xcffib, pytest, selenium, importlinter, mypy'
else
  extras='.'; marker=.venv/.installed
  probe='import appliance, pangocairocffi, xcffib'
fi
if ! .venv/bin/python -c "$probe" >/dev/null 2>&1 || [ pyproject.toml -nt "$marker" ]; then
  say "installing the appliance$([ "$test" = 1 ] && echo ' and the test tools') into .venv"
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e "$extras"
  touch "$marker"; [ "$test" = 1 ] && touch .venv/.installed  # the test install holds the host's
else
  say "venv up to date"
fi
say "ready: .venv/bin/appliance --help"
