#!/usr/bin/env bash
# The content window: an xterm (the reference's options) attached to the on-screen terminal's
# tmux session (start-terminal.sh: the content log in one pane, the operator's shell in the
# other), once the display answers, the window manager runs and the session exists.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
drop_secrets
require_env APPLIANCE_DISPLAY APPLIANCE_TERMINAL_SOCKET APPLIANCE_FONT_SIZE APPLIANCE_FOREGROUND \
  APPLIANCE_BACKGROUND APPLIANCE_CONTENT_GEOMETRY APPLIANCE_WAIT_TIMEOUT
session_exists() { tmux -S "$APPLIANCE_TERMINAL_SOCKET" has-session -t appliance; }
wait_for_display
wait_for_window_manager
wait_for "$APPLIANCE_WAIT_TIMEOUT" "terminal session" session_exists || die "no terminal session"
export DISPLAY=$APPLIANCE_DISPLAY LANG=C.UTF-8
printf -v attach 'tmux -u -S %q attach-session -t appliance' "$APPLIANCE_TERMINAL_SOCKET"
exec xterm -fa Monospace -fs "$APPLIANCE_FONT_SIZE" -bg "$APPLIANCE_BACKGROUND" \
  -fg "$APPLIANCE_FOREGROUND" -geometry "$APPLIANCE_CONTENT_GEOMETRY" -name appliance-content -T appliance-content \
  -e "$attach"
