#!/usr/bin/env bash
# The scene renderer, once the display answers and the window manager runs: it draws the
# layout (overlays/*.yaml) and listens for the controller on $APPLIANCE_SCENE_SOCKET.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
drop_secrets
require_env APPLIANCE_DISPLAY APPLIANCE_WIDTH APPLIANCE_HEIGHT APPLIANCE_SCENE_DIR APPLIANCE_SCENE_DEFAULT \
  APPLIANCE_SCENE_SOCKET APPLIANCE_PYTHON APPLIANCE_WAIT_TIMEOUT
wait_for_display
wait_for_window_manager
export DISPLAY=$APPLIANCE_DISPLAY
exec "$APPLIANCE_PYTHON" -m appliance.scene.renderer --scene-dir "$APPLIANCE_SCENE_DIR" \
  --size "${APPLIANCE_WIDTH}x${APPLIANCE_HEIGHT}" --display "$APPLIANCE_DISPLAY" \
  --default "$APPLIANCE_SCENE_DEFAULT" --socket "$APPLIANCE_SCENE_SOCKET"
