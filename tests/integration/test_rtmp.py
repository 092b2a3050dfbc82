"""The RTMP publisher against the sandbox's real nginx-rtmp ingest, plain and behind a TLS front:
FFmpeg's FLV from a pipe arrives whole (decoded: h264 + aac, every frame, no gap); a refused
publish, an untrusted certificate and a silent server end it with a clear, key-free reason, and
FFmpeg ends on its next write, as when its own connection failed."""

from __future__ import annotations

import http.server
import itertools
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.media.rtmp import Publisher, RtmpTarget
from tests.support.sandbox import requires_nginx
from tests.support.show import AcceptingCallbacks, ffprobe_json, frame_times
from tests.support.tls import TlsFront

KEY = "sk_pipe_publish_0123456789"
SECONDS = 6


def ffmpeg_into_pipe(seconds: float = SECONDS) -> tuple[subprocess.Popen[bytes], int]:
    """FFmpeg encoding a test picture and tone in real time (the reference's codecs) as FLV on a pipe."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
           "-f", "lavfi", "-i", "testsrc=size=640x360:rate=30", "-f", "lavfi", "-i", "sine=f=440:sample_rate=44100",
           "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "60",
           "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-f", "flv", f"pipe:{write_fd}"]
    proc = subprocess.Popen(cmd, pass_fds=(write_fd,), stderr=subprocess.PIPE)
    os.close(write_fd)
    return proc, read_fd


@pytest.fixture
def ingest() -> Iterator[object]:
    from appliance.sandbox.rtmp import RtmpIngest
    callbacks = AcceptingCallbacks()
    ingest = RtmpIngest(callback_base=callbacks.url)
    ingest.start()
    yield ingest
    ingest.cleanup()
    callbacks.close()


@requires_nginx
@pytest.mark.timeout(90)
@pytest.mark.parametrize("tls", [False, True], ids=["rtmp", "rtmps-through-a-tls-front"])
def test_ffmpeg_flv_from_a_pipe_is_published_whole(ingest, tls: bool) -> None:
    front = TlsFront(ingest.port) if tls else None
    try:
        url = f"rtmps://localhost:{front.port}/live/{KEY}" if front else f"{ingest.url}/{KEY}"
        proc, read_fd = ffmpeg_into_pipe()
        publisher = Publisher(RtmpTarget.parse(url), ssl_context=front.client_context() if front else None)
        publisher.start(read_fd)
        assert proc.wait(30) == 0, proc.stderr.read().decode() if proc.stderr else ""
        assert publisher.wait(10) and publisher.state == "closed" and publisher.media_sent, publisher.error
        time.sleep(1.0)  # nginx closes the recording
    finally:
        if front:
            front.close()
    [recording] = ingest.recordings()
    assert recording["name"].startswith(KEY)  # nginx saw the key as the stream name
    path = Path(recording["path"])
    streams = {s["codec_type"]: s for s in ffprobe_json(path, "-show_streams")["streams"]}
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
    assert (streams["video"]["width"], streams["video"]["height"]) == (640, 360)
    times = frame_times(path)
    assert len(times) == 30 * SECONDS, len(times)  # every frame FFmpeg encoded
    assert max(b - a for a, b in itertools.pairwise(times)) < 0.05
    audio = ffprobe_json(path, "-select_streams", "a", "-show_entries", "packet=pts_time", "-show_packets")["packets"]
    assert float(audio[-1]["pts_time"]) > SECONDS - 0.2


class _Refuse(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(403)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@requires_nginx
@pytest.mark.timeout(60)
def test_a_refused_publish_ends_ffmpeg_with_a_key_free_reason() -> None:
    from appliance.sandbox.rtmp import RtmpIngest
    refusing = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
    threading.Thread(target=refusing.serve_forever, daemon=True).start()
    ingest = RtmpIngest(callback_base=f"http://127.0.0.1:{refusing.server_port}")
    ingest.start()
    try:
        proc, read_fd = ffmpeg_into_pipe(seconds=30)
        publisher = Publisher(RtmpTarget.parse(f"{ingest.url}/{KEY}")).start(read_fd)
        started = time.monotonic()
        assert publisher.wait(15) and publisher.failed
        assert "closed the connection before the publish started" in publisher.error
        assert KEY not in publisher.error and ingest.url in publisher.error
        assert proc.wait(10) != 0 and time.monotonic() - started < 10  # FFmpeg ends on EPIPE, not at -t 30
        assert ingest.recordings() == []
    finally:
        ingest.cleanup()
        refusing.shutdown()


@requires_nginx
@pytest.mark.timeout(60)
def test_an_untrusted_certificate_is_refused_before_the_key_is_sent(ingest) -> None:
    front = TlsFront(ingest.port)
    try:
        proc, read_fd = ffmpeg_into_pipe(seconds=30)
        publisher = Publisher(RtmpTarget.parse(f"rtmps://localhost:{front.port}/live/{KEY}")).start(read_fd)
        assert publisher.wait(15) and publisher.failed
        assert "TLS certificate of localhost is not trusted" in publisher.error, publisher.error
        assert proc.wait(10) != 0
        assert ingest.recordings() == []  # nothing reached the ingest: the key was never sent
    finally:
        front.close()


@pytest.mark.timeout(30)
def test_a_silent_server_times_out_and_stop_is_immediate() -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers the handshake
    port = silent.getsockname()[1]
    try:
        proc, read_fd = ffmpeg_into_pipe(seconds=30)
        publisher = Publisher(RtmpTarget.parse(f"rtmp://127.0.0.1:{port}/live/{KEY}"), connect_timeout=1.5)
        started = time.monotonic()
        publisher.start(read_fd)
        assert publisher.wait(10) and publisher.failed and "no answer in time" in publisher.error
        assert time.monotonic() - started < 4
        proc.wait(10)

        proc, read_fd = ffmpeg_into_pipe(seconds=30)
        publisher = Publisher(RtmpTarget.parse(f"rtmp://127.0.0.1:{port}/live/{KEY}"), connect_timeout=20)
        publisher.start(read_fd)
        time.sleep(2.0)  # connected, waiting for S0/S1
        assert publisher.state == "connecting"
        started = time.monotonic()
        publisher.stop()
        assert time.monotonic() - started < 1.0 and publisher.state == "closed" and not publisher.error
        assert proc.wait(10) != 0
    finally:
        silent.close()
