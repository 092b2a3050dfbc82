#!/usr/bin/env bash
# The on-screen shell's session (supervisord's `shell` program), run as the shell user: a dtach
# master on $APPLIANCE_SHELL_SOCKET (in the shell's own folder) running shell-loop.sh with a
# clean environment (no APPLIANCE_*, no X or sound credentials, nothing secret) in its
# workspace. The terminal's shell pane attaches to it. Its socket is made readable and
# writable for the folder's group (the appliance's user, which attaches) and nobody else.
# When the shell is off (APPLIANCE_SHELL_OFF) this only says why, once, and waits.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
if [ -n "${APPLIANCE_SHELL_OFF:-}" ]; then
  log WARNING "on-screen shell off: $APPLIANCE_SHELL_OFF"
  exec sleep infinity
fi
require_env APPLIANCE_SHELL_SOCKET APPLIANCE_WORKSPACE APPLIANCE_TERMINAL_SHELL APPLIANCE_WAIT_TIMEOUT
home=$(cd "$(dirname "$0")" && pwd)
sock=$APPLIANCE_SHELL_SOCKET
rm -f "$sock"
mkdir -p "$APPLIANCE_WORKSPACE"
account=$(id -un)
log INFO "shell session of $account on $sock (shell $APPLIANCE_TERMINAL_SHELL, in $APPLIANCE_WORKSPACE)"
# the socket for the folder's group (the appliance's user attaches), once dtach made it
# (twice in the background: init reaps it, not dtach, which would leave a zombie)
( ( wait_for "$APPLIANCE_WAIT_TIMEOUT" "shell session socket" test -S "$sock" && chmod g+rw "$sock" ) & )
# in the foreground (exec): a background job of a script would start with SIGINT ignored, and
# so would the shell and everything typed into it (C-c would stop nothing)
exec env -i PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 TERM=screen HOME="$APPLIANCE_WORKSPACE" \
  USER="$account" LOGNAME="$account" SHELL="$APPLIANCE_TERMINAL_SHELL" \
  dtach -N "$sock" "$home/shell-loop.sh"
