#!/usr/bin/env bash
# openbox, the window manager, once the display answers, with the appliance's rules
# (openbox-rc.xml: the content window maximized and undecorated).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
drop_secrets
require_env APPLIANCE_DISPLAY APPLIANCE_WAIT_TIMEOUT
wait_for_display
export DISPLAY=$APPLIANCE_DISPLAY
exec openbox --config-file "$(dirname "$0")/openbox-rc.xml"
