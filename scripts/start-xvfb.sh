#!/usr/bin/env bash
# Xvfb on $APPLIANCE_DISPLAY at APPLIANCE_WIDTH x APPLIANCE_HEIGHT x 24, admitting only clients
# that hold the cookie in $XAUTHORITY (written by `appliance up` into the private runtime dir;
# the reference's -ac would let any local user read or draw the live display).
# A lock left by a dead Xvfb (killed, crashed, container restarted with a kept /tmp) is
# cleared; a lock held by a live process is left alone, and Xvfb then fails with its own message.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
drop_secrets
require_env APPLIANCE_DISPLAY APPLIANCE_WIDTH APPLIANCE_HEIGHT XAUTHORITY
[ -s "$XAUTHORITY" ] || die "XAUTHORITY=$XAUTHORITY holds no cookie (start the tree with 'appliance up')"

number=${APPLIANCE_DISPLAY#*:}
number=${number%%.*}
[[ $number =~ ^[0-9]+$ ]] || die "APPLIANCE_DISPLAY=$APPLIANCE_DISPLAY is not of the form :N"
lock=/tmp/.X${number}-lock
socket=/tmp/.X11-unix/X${number}

if [ -e "$lock" ]; then
  pid=$(tr -dc '0-9' <"$lock" || true)
  if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then
    log WARNING "display :$number is locked by live process $pid; Xvfb will refuse to start"
  else
    log INFO "clearing the stale lock of display :$number (pid ${pid:-none} is gone)"
    rm -f "$lock" "$socket"
  fi
fi

# Listening: only on the socket file /tmp/.X11-unix/X<n> (every X client here, xcb included,
# falls back to it). Not on TCP, and not on Linux's abstract socket (-nolisten local): abstract
# sockets belong to the network namespace, which containers sharing the host's network (fleet
# agents on a local sandbox) share while each has its own /tmp and lock; two of them on one
# number collided there ("Cannot establish any listening sockets"), a restart ~30 s later.
log INFO "starting Xvfb :$number ${APPLIANCE_WIDTH}x${APPLIANCE_HEIGHT}x24"
exec Xvfb ":$number" -screen 0 "${APPLIANCE_WIDTH}x${APPLIANCE_HEIGHT}x24" -auth "$XAUTHORITY" \
  -nolisten tcp -nolisten local -noreset
