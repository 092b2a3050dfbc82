#!/usr/bin/env bash
# The shell pane of the on-screen terminal (run by start-terminal.sh's tmux, as the appliance's
# user). It shows the shell session of the shell user (start-shell.sh) by attaching to its dtach
# socket: dtach's client only copies bytes (keys one way, the screen the other way), so nothing
# the shell user sends can make this side run anything. It attaches again, with a growing pause,
# whenever the session ends; when the shell is off it says why and waits.
set -uo pipefail
if [ -n "${APPLIANCE_SHELL_OFF:-}" ]; then
  printf 'on-screen shell off: %s\r\n' "$APPLIANCE_SHELL_OFF"
  exec sleep infinity
fi
sock=${APPLIANCE_SHELL_SOCKET:?} owner=${APPLIANCE_SHELL_RUN_AS:?}
pause=1
said=""
while :; do
  # the socket must be the shell user's own socket, not a link it planted to one of ours
  if [ -S "$sock" ] && [ ! -L "$sock" ] && [ "$(stat -c %U "$sock" 2>/dev/null)" = "$owner" ]; then
    started=$(date +%s)
    dtach -a "$sock" -E -z -r ctrl_l
    [ $(( $(date +%s) - started )) -ge 10 ] && pause=1
    printf '\r\n[the shell session ended; attaching again in %ss]\r\n' "$pause"
    said=""
  elif [ -z "$said" ]; then
    printf '\r\n[waiting for the shell session of %s]\r\n' "$owner"
    said=yes
  fi
  sleep "$pause"
  pause=$(( pause < 16 ? pause * 2 : 30 ))
done
