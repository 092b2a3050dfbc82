# Shared helpers for the process-tree start scripts (sourced, not run).
# One log line format for every process of the appliance, the same as appliance/core/logs.py:
#   2026-11-27T03:04:05Z <name> <LEVEL> <message>
# Settings come from APPLIANCE_* variables; `appliance up` (appliance/up/tree.py,
# tree_environment) sets every one of them, so the scripts define no defaults of their own.

APPLIANCE_LOG_NAME=${APPLIANCE_LOG_NAME:-$(basename "$0" .sh)}

log() {  # log LEVEL message...
  local level=$1; shift
  printf '%s %s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$APPLIANCE_LOG_NAME" "$level" "$*" >&2
}

die() { log ERROR "$*"; exit 1; }

drop_secrets() {  # helpers never need the token nor where it is (`appliance up` keeps the token itself out of the environment)
  unset RETAKE_ACCESS_TOKEN RETAKE_ACCESS_TOKEN_FILE
}

require_env() {  # require_env NAME...: fail early and clearly when the launcher did not set one
  local name
  for name in "$@"; do
    [ -n "${!name:-}" ] || die "$name is not set (start the tree with 'appliance up')"
  done
}

wait_for() {  # wait_for SECONDS WHAT command...: poll every 0.2 s until the command succeeds
  local timeout=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log ERROR "gave up waiting ${timeout}s for $what"
      return 1
    fi
    sleep 0.2
  done
  log INFO "$what is ready"
}

# Every probe has its own timeout: a server that accepts and then hangs must not outlast wait_for.
display_answers() { timeout 5 xdpyinfo -display "$APPLIANCE_DISPLAY" >/dev/null 2>&1; }

wait_for_display() {
  wait_for "$APPLIANCE_WAIT_TIMEOUT" "display $APPLIANCE_DISPLAY" display_answers
}

wm_running() {  # the root names a live supporting window (EWMH), so a WM manages new windows
  local id
  id=$(timeout 5 xprop -display "$APPLIANCE_DISPLAY" -root _NET_SUPPORTING_WM_CHECK 2>/dev/null \
    | awk '/window id/ {print $NF}')
  [ -n "$id" ] && timeout 5 xprop -display "$APPLIANCE_DISPLAY" -id "$id" _NET_WM_NAME >/dev/null 2>&1
}

# A window mapped while openbox is still starting can be left unmanaged and never drawn (seen
# here: an all-black screen about one start in two), so the content window waits for the WM.
# Without one after the timeout it starts anyway: an unmanaged window still shows.
wait_for_window_manager() {
  wait_for "$APPLIANCE_WAIT_TIMEOUT" "window manager on $APPLIANCE_DISPLAY" wm_running \
    || log WARNING "starting without a window manager"
}

sink_exists() {
  timeout 5 pactl --server "unix:$APPLIANCE_PULSE_SOCKET" list short sinks 2>/dev/null \
    | awk '{print $2}' | grep -qx -- "$APPLIANCE_SINK"
}

wait_for_sink() {
  wait_for "$APPLIANCE_WAIT_TIMEOUT" "sound sink $APPLIANCE_SINK" sink_exists
}
