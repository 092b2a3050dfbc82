"""PulseAudio: the null sink the voice plays into and FFmpeg records from (its ``.monitor``).

Talks to the daemon through pulsectl (libpulse), which honours ``PULSE_SERVER`` (and
``XDG_RUNTIME_DIR``/``PULSE_RUNTIME_PATH``) like every other PulseAudio client.
Note: ``pulsectl.PulseDisconnected`` does not inherit from ``PulseError``; both are caught
by name here and turned into :class:`~appliance.core.errors.MediaError`.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pulsectl

from ..core import proc
from ..core.errors import MediaError

log = logging.getLogger("appliance.audio")

CLIENT_NAME = "retake-appliance"
_PULSE_ERRORS = (pulsectl.PulseError, pulsectl.PulseDisconnected)


def _server(server: str | None) -> str | None:
    return server or os.environ.get("PULSE_SERVER") or None


SocketAddress = tuple[socket.AddressFamily, "str | tuple[str, int]"]


def server_socket(server: str | None = None) -> SocketAddress | None:
    """The socket address libpulse would use for ``server`` (None: not a plain local/tcp one)."""
    server = _server(server)
    if not server:
        runtime = os.environ.get("PULSE_RUNTIME_PATH") or os.path.join(
            os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}", "pulse")
        return socket.AF_UNIX, os.path.join(runtime, "native")
    first = server.split()[0]  # PULSE_SERVER may list several; the first is tried first
    if first.startswith("unix:") or first.startswith("/"):
        return socket.AF_UNIX, first.removeprefix("unix:")
    if first.startswith("tcp:") or first.startswith("tcp4:"):
        host, _, port = first.split(":", 1)[1].rpartition(":")
        if host and port.isdigit():
            return socket.AF_INET, (host, int(port))
        return socket.AF_INET, (first.split(":", 1)[1], 4713)
    return None


def _answers(address: SocketAddress, timeout: float) -> bool:
    family, where = address
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(where)
            return True
        except OSError:
            return False


@contextmanager
def _pulse(server: str | None = None, timeout: float = 2.0) -> Iterator[pulsectl.Pulse]:
    # pulsectl's connect(timeout=...) always waits the whole timeout (its poll loop resets the
    # stop flag), so the bound comes from a plain socket connect first; a daemon that accepts
    # the socket answers the libpulse handshake at once.
    address = server_socket(server)  # None: let libpulse decide
    if address is not None and not _answers(address, timeout):
        raise pulsectl.PulseError(f"nothing listens at {address[1]}")
    pulse = pulsectl.Pulse(CLIENT_NAME, server=_server(server), connect=False)
    try:
        pulse.connect(autospawn=False, wait=False)
        yield pulse
    finally:
        pulse.close()


def pulse_available(server: str | None = None, timeout: float = 2.0) -> bool:
    """True when a PulseAudio daemon answers within ``timeout`` seconds."""
    try:
        with _pulse(server, timeout) as pulse:
            pulse.server_info()
        return True
    except _PULSE_ERRORS as exc:
        log.debug("PulseAudio not reachable: %s", exc)
        return False


def sink_exists(name: str, server: str | None = None, timeout: float = 2.0) -> bool:
    """True when the daemon answers and has a sink called ``name``."""
    try:
        with _pulse(server, timeout) as pulse:
            return any(s.name == name for s in pulse.sink_list())
    except _PULSE_ERRORS:
        return False


def ensure_sink(name: str, sample_rate: int, *, server: str | None = None,
                timeout: float = 2.0) -> None:
    """Create the stereo null sink ``name`` at ``sample_rate`` if missing and make it the default.

    Idempotent: an existing sink of that name is kept as it is.
    """
    try:
        with _pulse(server, timeout) as pulse:
            if not any(s.name == name for s in pulse.sink_list()):
                args = (f"sink_name={name} rate={int(sample_rate)} channels=2 "
                        f"sink_properties=device.description={name}")
                pulse.module_load("module-null-sink", args)
                log.info("created PulseAudio null sink %s (%d Hz, stereo)", name, sample_rate)
            sink = pulse.get_sink_by_name(name)
            if pulse.server_info().default_sink_name != name:
                pulse.default_set(sink)
    except _PULSE_ERRORS as exc:
        raise MediaError(f"PulseAudio: cannot set up sink {name!r}: {exc}",
                         fix="is the daemon running (pulseaudio -D --exit-idle-time=-1)? "
                             "PULSE_SERVER must point at it") from None


def sink_monitor(name: str) -> str:
    """The PulseAudio source that records what is played into sink ``name``."""
    return f"{name}.monitor"


KEEPER_CLIENT = "retake-appliance-sink-clock"
KEEPER_LATENCY_MS = 50  # what the encoder asks of the monitor (-fragment_size 8820: 50 ms at 44.1 kHz)


def keep_sink_clock(name: str, *, latency_ms: int = KEEPER_LATENCY_MS, server: str | None = None,
                    timeout: float = 2.0, popen: proc.Popen = proc.popen,
                    ) -> subprocess.Popen[bytes] | None:
    """Keep the null sink ``name`` rendering in ``latency_ms`` blocks while the appliance runs.

    Nobody listening, a null sink renders in 2-s blocks, and a stream that starts recording its
    monitor gets its first audio only at the next block: an encoder started then waited up to 2 s
    to open its audio input (measured: FFmpeg's pulse input opened in ~2.0 s, ~0.1-0.3 s with
    this). A record stream (``parec`` into nothing, ~0.1 % of a core, dying with us) asks for
    the encoder's latency, and a suspend and resume of the idle sink restarts its clock at once.
    None (logged) when it cannot: the appliance then only starts slower."""
    try:
        keeper = popen(["parec", f"--device={sink_monitor(name)}", f"--latency-msec={int(latency_ms)}", "--raw",
                        f"--client-name={KEEPER_CLIENT}"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError as exc:
        log.warning("cannot keep the sink's clock (parec: %s): the encoder may wait up to 2 s for audio", exc)
        return None
    try:
        with _pulse(server, timeout) as pulse:
            deadline = time.monotonic() + timeout
            while not any(o.proplist.get("application.name") == KEEPER_CLIENT for o in pulse.source_output_list()):
                if keeper.poll() is not None or time.monotonic() > deadline:
                    log.warning("the sink clock keeper did not start recording %s", sink_monitor(name))
                    return keeper
                time.sleep(0.02)
            sink = pulse.get_sink_by_name(name)
            pulse.sink_suspend(sink.index, 1)  # idle: nothing is heard, nothing is recorded yet
            pulse.sink_suspend(sink.index, 0)
    except _PULSE_ERRORS as exc:
        log.warning("cannot restart the sink's clock: %s", exc)
    return keeper


# --- levels: the sink's volume and mute, and each client's streams ---------------------------

def _percent(value: float) -> float:
    return max(0.0, min(1.5, value / 100.0))


def set_sink_level(name: str, *, volume: float | None = None, mute: bool | None = None,
                   server: str | None = None, timeout: float = 2.0) -> dict[str, object]:
    """Set the sink's volume (%, up to 150) and/or mute; returns what it is now."""
    try:
        with _pulse(server, timeout) as pulse:
            sink = pulse.get_sink_by_name(name)
            if volume is not None:
                pulse.volume_set_all_chans(sink, _percent(volume))
            if mute is not None:
                pulse.mute(sink, mute)
            sink = pulse.get_sink_by_name(name)
            return {"volume": round(sink.volume.value_flat * 100), "muted": bool(sink.mute)}
    except _PULSE_ERRORS as exc:
        raise MediaError(f"PulseAudio: cannot set the level of sink {name!r}: {exc}") from None


def set_stream_level(client: str, volume: float, *, server: str | None = None,
                     timeout: float = 2.0) -> int:
    """Set every playing stream of ``client`` (its application.name) to ``volume`` %; how many."""
    try:
        with _pulse(server, timeout) as pulse:
            streams = [s for s in pulse.sink_input_list()
                       if s.proplist.get("application.name") == client]
            for stream in streams:
                pulse.volume_set_all_chans(stream, _percent(volume))
            return len(streams)
    except _PULSE_ERRORS as exc:
        raise MediaError(f"PulseAudio: cannot set the level of {client}: {exc}") from None
