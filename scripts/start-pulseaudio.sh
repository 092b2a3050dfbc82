#!/usr/bin/env bash
# PulseAudio with one null sink at one sample rate end to end (sink, monitor, encoder).
# Its config is generated into $APPLIANCE_RUNTIME_DIR/pulse; the native socket is
# $APPLIANCE_PULSE_SOCKET (clients: PULSE_SERVER=unix:$APPLIANCE_PULSE_SOCKET).
# No module-suspend-on-idle: a suspended sink's monitor would stop the encoder's audio clock.
# As root it runs as a per-user daemon (it warns that it is not meant for root; --system would
# need the pulse user and a system bus); in the image it runs as the appliance user.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
drop_secrets
require_env APPLIANCE_RUNTIME_DIR APPLIANCE_PULSE_SOCKET APPLIANCE_SINK APPLIANCE_SAMPLE_RATE

dir=$APPLIANCE_RUNTIME_DIR/pulse
mkdir -p "$dir"
chmod 700 "$dir"
# Everything PulseAudio keeps goes into the private runtime dir, not $HOME.
export XDG_RUNTIME_DIR=$APPLIANCE_RUNTIME_DIR XDG_CONFIG_HOME=$dir/config
export PULSE_RUNTIME_PATH=$dir PULSE_STATE_PATH=$dir/state
mkdir -p "$XDG_CONFIG_HOME/pulse" "$PULSE_STATE_PATH"
export PULSE_CONFIG=$XDG_CONFIG_HOME/pulse/daemon.conf
# clients connect anonymously (auth-anonymous=1); a cookie only spares the daemon's warnings
[ -s "$XDG_CONFIG_HOME/pulse/cookie" ] || head -c 256 /dev/urandom >"$XDG_CONFIG_HOME/pulse/cookie"

cat >"$PULSE_CONFIG" <<CONF
default-sample-format = s16le
default-sample-rate = $APPLIANCE_SAMPLE_RATE
alternate-sample-rate = $APPLIANCE_SAMPLE_RATE
default-sample-channels = 2
avoid-resampling = yes
exit-idle-time = -1
realtime-scheduling = no
high-priority = no
flat-volumes = no
CONF

cat >"$dir/default.pa" <<PA
.fail
load-module module-native-protocol-unix socket=$APPLIANCE_PULSE_SOCKET auth-anonymous=1
load-module module-null-sink sink_name=$APPLIANCE_SINK rate=$APPLIANCE_SAMPLE_RATE channels=2 sink_properties=device.description=$APPLIANCE_SINK
set-default-sink $APPLIANCE_SINK
set-default-source $APPLIANCE_SINK.monitor
PA

# supervisord runs one instance at a time: a socket left here is a dead daemon's.
rm -f "$APPLIANCE_PULSE_SOCKET"
log INFO "starting PulseAudio: sink $APPLIANCE_SINK at $APPLIANCE_SAMPLE_RATE Hz"
exec pulseaudio --daemonize=no --system=false --exit-idle-time=-1 --use-pid-file=false \
  --disallow-exit --log-target=stderr -n -F "$dir/default.pa"
