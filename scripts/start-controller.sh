#!/usr/bin/env bash
# The controller, once the display answers, the window manager runs (so the first frames
# and the mandatory first thumbnail show the content window) and the sound sink exists:
# `appliance live --config $APPLIANCE_CONFIG`, or the command given as arguments
# (APPLIANCE_CONTROLLER, a stand-in for tests). Its exit decides the tree's fate
# (see conf.d/controller.conf).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
require_env APPLIANCE_DISPLAY APPLIANCE_PULSE_SOCKET APPLIANCE_SINK APPLIANCE_CONFIG APPLIANCE_WAIT_TIMEOUT
wait_for_display
wait_for_window_manager
wait_for_sink
export DISPLAY=$APPLIANCE_DISPLAY PULSE_SERVER=unix:$APPLIANCE_PULSE_SOCKET
if [ "$#" -gt 0 ]; then
  log INFO "starting a stand-in controller: $1"
  exec "$@"
fi
log INFO "starting appliance live --config $APPLIANCE_CONFIG"
exec appliance live --config "$APPLIANCE_CONFIG"
