#!/usr/bin/env bash
# The on-screen terminal: a tmux server (in the foreground, so supervisord owns it), run as the
# appliance's user, with one session of two panes: the content log on top (`tail -F`, as the
# content window always showed) and the shell pane below (scripts/shell-pane.sh), which shows
# the shell session that runs as the separate shell user (scripts/start-shell.sh). The content
# window (start-content.sh) attaches an xterm to this session; the operator types through the
# socket (appliance/media/terminal.py), never viewers' chat. Nothing of the shell user runs
# here and no process of ours connects to a server the shell user controls: the pane only
# relays bytes to its session (see appliance/media/terminal.py).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
require_env APPLIANCE_TERMINAL_SOCKET APPLIANCE_CONTENT_LOG APPLIANCE_CONTENT_GEOMETRY \
  APPLIANCE_TERMINAL_LOG_PERCENT APPLIANCE_WAIT_TIMEOUT
home=$(cd "$(dirname "$0")" && pwd)
sock=$APPLIANCE_TERMINAL_SOCKET
mkdir -p "$(dirname "$APPLIANCE_CONTENT_LOG")"
touch "$APPLIANCE_CONTENT_LOG"
rm -f "$sock"
geometry=${APPLIANCE_CONTENT_GEOMETRY%%+*}
cols=${geometry%x*}
rows=${geometry#*x}
export SHELL=/bin/sh  # tmux runs panes with $SHELL -c: never the account's login shell
tmux() { command tmux -u -S "$sock" "$@"; }
tmux -f "$home/tmux.conf" -D &
server=$!
trap 'kill -TERM "$server" 2>/dev/null; wait "$server"' TERM INT
wait_for "$APPLIANCE_WAIT_TIMEOUT" "tmux server" test -S "$sock" || die "tmux did not start"
printf -v follow 'exec tail -n 200 -F %q' "$APPLIANCE_CONTENT_LOG"
printf -v pane 'exec %q' "$home/shell-pane.sh"
tmux new-session -d -s appliance -n live -x "$cols" -y "$rows" "$follow"
tmux split-window -v -t appliance:0 -l "$((100 - APPLIANCE_TERMINAL_LOG_PERCENT))%" "$pane"
tmux select-pane -t appliance:0.1
log INFO "terminal session ready on $sock (pane 0: the log, pane 1: the shell${APPLIANCE_SHELL_OFF:+, off: $APPLIANCE_SHELL_OFF})"
wait "$server"
