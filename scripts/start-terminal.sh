#!/usr/bin/env bash
# The on-screen terminal: a tmux server (in the foreground, so supervisord owns it) with one
# session of two panes: the content log on top (`tail -F`, as the content window always
# showed) and an interactive shell below, run as this (the appliance's unprivileged) user with
# a clean environment (no APPLIANCE_*, no token, no X or sound credentials) in the state
# folder's workspace/. The content window (start-content.sh) attaches an xterm to the session;
# the operator types through the socket (appliance/media/terminal.py), never viewers' chat.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
drop_secrets
require_env APPLIANCE_TERMINAL_SOCKET APPLIANCE_CONTENT_LOG APPLIANCE_WORKSPACE APPLIANCE_CONTENT_GEOMETRY \
  APPLIANCE_TERMINAL_SHELL APPLIANCE_TERMINAL_LOG_PERCENT APPLIANCE_WAIT_TIMEOUT
home=$(dirname "$0")
sock=$APPLIANCE_TERMINAL_SOCKET
mkdir -p "$(dirname "$APPLIANCE_CONTENT_LOG")" "$APPLIANCE_WORKSPACE"
touch "$APPLIANCE_CONTENT_LOG"
rm -f "$sock"
geometry=${APPLIANCE_CONTENT_GEOMETRY%%+*}
cols=${geometry%x*}
rows=${geometry#*x}
tmux() { command tmux -u -S "$sock" "$@"; }
tmux -f "$home/tmux.conf" -D &
server=$!
trap 'kill -TERM "$server" 2>/dev/null; wait "$server"' TERM INT
wait_for "$APPLIANCE_WAIT_TIMEOUT" "tmux server" test -S "$sock" || die "tmux did not start"
printf -v follow 'exec tail -n 200 -F %q' "$APPLIANCE_CONTENT_LOG"
norc=""  # bash: no rc files (Debian's would set its own prompt); the prompt comes from PS1
[ "$(basename "$APPLIANCE_TERMINAL_SHELL")" = bash ] && norc="--norc --noprofile"
printf -v shell 'cd %q && exec env -i HOME=%q PATH=/usr/local/bin:/usr/bin:/bin TERM=screen LANG=C.UTF-8 PS1=%q %q %s -i' \
  "$APPLIANCE_WORKSPACE" "$APPLIANCE_WORKSPACE" '\W \$ ' "$APPLIANCE_TERMINAL_SHELL" "$norc"
tmux new-session -d -s appliance -n live -x "$cols" -y "$rows" "$follow"
tmux split-window -v -t appliance:0 -l "$((100 - APPLIANCE_TERMINAL_LOG_PERCENT))%" "$shell"
tmux select-pane -t appliance:0.1
log INFO "terminal session ready on $sock (pane 0: the log, pane 1: the shell)"
wait "$server"
