#!/usr/bin/env bash
# The content window: an xterm showing the content log (the reference's options), once the
# display answers and the window manager runs. `tail -F` follows the file across truncation
# and re-creation.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
drop_secrets
require_env APPLIANCE_DISPLAY APPLIANCE_CONTENT_LOG APPLIANCE_FONT_SIZE APPLIANCE_FOREGROUND \
  APPLIANCE_BACKGROUND APPLIANCE_CONTENT_GEOMETRY APPLIANCE_WAIT_TIMEOUT
mkdir -p "$(dirname "$APPLIANCE_CONTENT_LOG")"
touch "$APPLIANCE_CONTENT_LOG"
wait_for_display
wait_for_window_manager
export DISPLAY=$APPLIANCE_DISPLAY
printf -v follow 'tail -n 200 -F %q' "$APPLIANCE_CONTENT_LOG"
exec xterm -fa Monospace -fs "$APPLIANCE_FONT_SIZE" -bg "$APPLIANCE_BACKGROUND" \
  -fg "$APPLIANCE_FOREGROUND" -geometry "$APPLIANCE_CONTENT_GEOMETRY" -name appliance-content -T appliance-content \
  -e "$follow"
