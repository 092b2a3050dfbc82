"""An RTMP(S) publisher: FFmpeg's FLV read from a pipe, sent to the ingest by this process.

Why it exists: FFmpeg 5.1 (Debian bookworm) takes its output URL, and so the stream key, only
as a command-line argument, which every local user reads in ``/proc/<pid>/cmdline``
(``ps -eo args``). It has no way to read the URL or ``-rtmp_playpath`` from a file or a
descriptor (the ``-/option FILE`` syntax came with FFmpeg 7). So FFmpeg writes FLV to an
inherited pipe (``pipe:N``, nothing secret in its argv) and :class:`Publisher` publishes it:
the key stays in the controller's memory. docs/security.md compares the alternatives.

What it speaks is the publishing half of RTMP 1.0, in the order FFmpeg's own client uses:
the handshake (C1 with the Flash Player digest, C2 the echo of S1), Set Chunk Size 4096,
``connect`` (app, type nonprivate, flashVer, tcUrl), ``releaseStream``, ``FCPublish``,
``createStream``, ``publish(key, "live")``, then each FLV tag as one message (the
``onMetaData`` script tag as ``@setDataFrame``), and ``FCUnpublish`` + ``deleteStream`` when
FFmpeg ends. It answers pings and sends acknowledgements; a server's ``_error`` or an
``onStatus`` of level error ends the publish with the server's own words (cleaned, key masked).
``rtmps://`` is TLS with the certificate checked against the system's CAs (FFmpeg's ``tls``
protocol does not check it by default); ``SSL_CERT_FILE`` adds a private CA.

Bounded everywhere: one deadline for everything up to ``NetStream.Publish.Start``, a timeout
on every send and receive, incoming messages at most :data:`MAX_INCOMING` bytes, FLV tags at
most what the format can say (16 MiB), and no queue: when the ingest stops reading, the pipe
fills and FFmpeg blocks, so the encoder's stall detection sees it as before. When the publish
fails, the pipe is closed and FFmpeg ends on its next write (EPIPE), as when its own RTMP
connection failed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import logging
import os
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ..core.errors import MediaError
from ..core.sanitize import clean_text

log = logging.getLogger("appliance.rtmp")

DEFAULT_PORTS = {"rtmp": 1935, "rtmps": 443}
HANDSHAKE_SIZE = 1536
CHUNK_SIZE = 4096                # what we send with; FFmpeg and OBS use the same
MAX_INCOMING = 1 << 20           # a server's command or control message; real ones are < 1 KiB
MAX_CHUNK_SIZE = 1 << 24         # the largest chunk size a server may set that we accept
CONNECT_TIMEOUT_S = 10.0         # TCP, TLS, handshake and the publish commands, together
IO_TIMEOUT_S = 30.0              # one send or receive once publishing (the encoder's stall check fires first)
READ_SIZE = 1 << 16
FLASHVER = "FMLE/3.0 (compatible; retake-appliance)"
# the client key of the Flash Player handshake digest (public, in every RTMP implementation)
_FP_KEY = b"Genuine Adobe Flash Player 001"

# message types
SET_CHUNK_SIZE, ABORT, ACK, USER_CONTROL, WINDOW_ACK_SIZE, PEER_BANDWIDTH = 1, 2, 3, 4, 5, 6
AUDIO, VIDEO, DATA_AMF0, COMMAND_AMF3, COMMAND_AMF0 = 8, 9, 18, 17, 20
PING_REQUEST, PING_RESPONSE = 6, 7
# chunk stream ids: protocol control, commands, then one per kind of media
CS_CONTROL, CS_COMMAND, CS_AUDIO, CS_DATA, CS_VIDEO = 2, 3, 4, 5, 6
MEDIA_CHUNK_STREAMS = {AUDIO: CS_AUDIO, VIDEO: CS_VIDEO, DATA_AMF0: CS_DATA}
MASK = "<key redacted>"


class RtmpError(MediaError):
    """The ingest refused, dropped or garbled the publish (temporary: a fresh key may work)."""


def is_rtmp_url(target: str) -> bool:
    return target.lower().startswith(("rtmp://", "rtmps://"))


@dataclasses.dataclass(frozen=True)
class RtmpTarget:
    """Where to publish: ``rtmp(s)://host[:port]/app[/instance]/stream``, split as FFmpeg does
    (the app is the first path part, or the first two when there are three or more; the rest
    is the stream name, the secret key). ``repr`` never shows the key."""

    scheme: str
    host: str
    port: int
    app: str
    stream: str = dataclasses.field(repr=False)

    @classmethod
    def parse(cls, url: str) -> RtmpTarget:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.hostname:
            raise RtmpError("the RTMP target must be rtmp://host/app/key or rtmps://host/app/key")
        try:
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError:
            raise RtmpError("the RTMP target has a bad port") from None
        path = parts.path.lstrip("/") + (f"?{parts.query}" if parts.query else "")
        first, sep, rest = path.partition("/")
        if not sep or not first or not rest:
            raise RtmpError(f"the RTMP target {scheme}://{parts.hostname}/... names no app and key")
        second, sep, tail = rest.partition("/")
        app, stream = (f"{first}/{second}", tail) if sep and tail else (first, rest)
        return cls(scheme, parts.hostname, port, app, stream)

    @property
    def tls(self) -> bool:
        return self.scheme == "rtmps"

    @property
    def tc_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == DEFAULT_PORTS[self.scheme] else f":{self.port}"
        return f"{self.scheme}://{host}{port}/{self.app}"

    def redact(self, text: str) -> str:
        for secret in (self.stream, self.stream.partition("?")[0]):  # with its query, and without
            if secret:
                text = text.replace(secret, MASK)
        return text


# --- AMF0 (the command encoding) --------------------------------------------------------------

def amf_encode(value: Any) -> bytes:
    """One AMF0 value: None (null), bool, int/float (number), str, dict (object)."""
    if value is None:
        return b"\x05"
    if isinstance(value, bool):
        return b"\x01" + (b"\x01" if value else b"\x00")
    if isinstance(value, (int, float)):
        return b"\x00" + struct.pack(">d", float(value))
    if isinstance(value, str):
        data = value.encode("utf-8")
        if len(data) > 0xFFFF:
            return b"\x0c" + struct.pack(">I", len(data)) + data
        return b"\x02" + struct.pack(">H", len(data)) + data
    if isinstance(value, dict):
        body = b"".join(_amf_key(k) + amf_encode(v) for k, v in value.items())
        return b"\x03" + body + b"\x00\x00\x09"
    raise TypeError(f"no AMF0 encoding for {type(value).__name__}")


def _amf_key(key: str) -> bytes:
    data = key.encode("utf-8")
    return struct.pack(">H", len(data)) + data


class _AmfReader:
    """Decodes the AMF0 values a server sends in commands; anything else is an RtmpError."""

    MAX_DEPTH = 8

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise RtmpError("a truncated AMF0 value from the ingest")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def string(self, long: bool = False) -> str:
        size = struct.unpack(">I" if long else ">H", self.take(4 if long else 2))[0]
        return self.take(size).decode("utf-8", "replace")

    def value(self, depth: int = 0) -> Any:
        if depth > self.MAX_DEPTH:
            raise RtmpError("AMF0 from the ingest nests too deep")
        marker = self.take(1)[0]
        if marker == 0x00:
            return struct.unpack(">d", self.take(8))[0]
        if marker == 0x01:
            return self.take(1) != b"\x00"
        if marker in (0x02, 0x0C):
            return self.string(long=marker == 0x0C)
        if marker in (0x05, 0x06):
            return None
        if marker in (0x03, 0x08):  # object, ECMA array (a count, then the same as an object)
            if marker == 0x08:
                self.take(4)
            result: dict[str, Any] = {}
            while True:
                key = self.string()
                if not key and self.data[self.pos:self.pos + 1] == b"\x09":
                    self.pos += 1
                    return result
                result[key] = self.value(depth + 1)
        if marker == 0x0A:
            count = struct.unpack(">I", self.take(4))[0]
            if count > len(self.data):
                raise RtmpError("an AMF0 array longer than its message")
            return [self.value(depth + 1) for _ in range(count)]
        if marker == 0x0B:
            self.take(10)
            return None
        raise RtmpError(f"AMF0 type {marker:#x} from the ingest is not supported")

    def all(self) -> list[Any]:
        values = []
        while self.pos < len(self.data):
            values.append(self.value())
        return values


def amf_decode_all(data: bytes) -> list[Any]:
    return _AmfReader(data).all()


# --- chunks ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Message:
    type_id: int
    stream_id: int
    timestamp: int
    payload: bytes


def chunk_message(csid: int, type_id: int, stream_id: int, timestamp: int, payload: bytes,
                  chunk_size: int = CHUNK_SIZE) -> bytes:
    """One message as chunks: a full (type 0) header, then type 3 continuation headers. A
    timestamp of 0xFFFFFF or more (after 4.66 hours) goes in the extended field, which then
    follows every continuation header too (as FFmpeg and nginx-rtmp do)."""
    if not 2 <= csid <= 63:
        raise ValueError("chunk stream ids 2..63 only")
    timestamp &= 0xFFFFFFFF
    extended = struct.pack(">I", timestamp) if timestamp >= 0xFFFFFF else b""
    header = (bytes([csid]) + min(timestamp, 0xFFFFFF).to_bytes(3, "big") + len(payload).to_bytes(3, "big")
              + bytes([type_id]) + struct.pack("<I", stream_id) + extended)
    parts = [header, payload[:chunk_size]]
    continuation = bytes([0xC0 | csid]) + extended
    for offset in range(chunk_size, len(payload), chunk_size):
        parts += [continuation, payload[offset:offset + chunk_size]]
    return b"".join(parts)


@dataclasses.dataclass
class _ChunkStream:
    timestamp: int = 0
    delta: int = 0
    length: int = 0
    type_id: int = 0
    stream_id: int = 0
    extended: bool = False
    partial: bytearray = dataclasses.field(default_factory=bytearray)


class ChunkReader:
    """Reassembles the messages a server sends from its chunks (all four header types); a Set
    Chunk Size or Abort takes effect at once, for the chunks that follow it."""

    MAX_STREAMS = 64

    def __init__(self) -> None:
        self.chunk_size = 128
        self.buffer = bytearray()
        self.streams: dict[int, _ChunkStream] = {}

    def abort(self, csid: int) -> None:
        if csid in self.streams:
            self.streams[csid].partial.clear()

    def feed(self, data: bytes) -> list[Message]:
        self.buffer += data
        messages: list[Message] = []
        while True:
            message, used = self._one()
            if not used:
                return messages
            del self.buffer[:used]
            if message is not None:
                messages.append(message)

    def _one(self) -> tuple[Message | None, int]:
        buf = self.buffer
        if not buf:
            return None, 0
        fmt, csid, pos = buf[0] >> 6, buf[0] & 0x3F, 1
        if csid in (0, 1):
            need = 2 if csid == 0 else 3
            if len(buf) < need:
                return None, 0
            csid = 64 + buf[1] + (buf[2] * 256 if csid == 1 else 0)
            pos = need
        size = (11, 7, 3, 0)[fmt]
        if len(buf) < pos + size:
            return None, 0
        stream = self.streams.get(csid)
        if stream is None:
            if fmt != 0 or len(self.streams) >= self.MAX_STREAMS:
                raise RtmpError(f"the ingest sent a chunk (type {fmt}) on unknown chunk stream {csid}")
            stream = self.streams[csid] = _ChunkStream()
        head = bytes(buf[pos:pos + size])
        pos += size
        field = 0
        starting = not stream.partial
        if fmt <= 2:
            field = int.from_bytes(head[0:3], "big")
            stream.extended = field == 0xFFFFFF
            if fmt <= 1:
                stream.length = int.from_bytes(head[3:6], "big")
                stream.type_id = head[6]
                if stream.length > MAX_INCOMING:
                    raise RtmpError(f"the ingest sent a {stream.length}-byte message (at most {MAX_INCOMING})")
            if fmt == 0:
                stream.stream_id = struct.unpack("<I", head[7:11])[0]
        if stream.extended:
            if len(buf) < pos + 4:
                return None, 0
            field = struct.unpack(">I", buf[pos:pos + 4])[0]
            pos += 4
        take = min(self.chunk_size, stream.length - len(stream.partial))
        if len(buf) < pos + take:
            return None, 0
        if fmt == 0:
            stream.timestamp, stream.delta = field, 0
        elif fmt in (1, 2):
            stream.delta = field
            stream.timestamp = (stream.timestamp + field) & 0xFFFFFFFF
        elif starting:
            stream.timestamp = (stream.timestamp + stream.delta) & 0xFFFFFFFF
        stream.partial += buf[pos:pos + take]
        pos += take
        if len(stream.partial) < stream.length:
            return None, pos
        message = Message(stream.type_id, stream.stream_id, stream.timestamp, bytes(stream.partial))
        stream.partial.clear()
        if message.type_id in (SET_CHUNK_SIZE, ABORT) and len(message.payload) >= 4:
            self._control(message.type_id, struct.unpack(">I", message.payload[:4])[0])  # applies to what follows
        return message, pos

    def _control(self, type_id: int, value: int) -> None:
        if type_id == ABORT:
            self.abort(value)
            return
        size = value & 0x7FFFFFFF
        if not 1 <= size <= MAX_CHUNK_SIZE:
            raise RtmpError(f"the ingest set a chunk size of {size}")
        self.chunk_size = size


# --- FLV -------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class FlvTag:
    type_id: int          # 8 audio, 9 video, 18 script data
    timestamp: int        # milliseconds
    payload: bytes


class FlvReader:
    """FLV as FFmpeg's muxer writes it, tag by tag, from whatever pieces the pipe gives."""

    MAX_HEADER = 1024

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.header_done = False

    def feed(self, data: bytes) -> list[FlvTag]:
        self.buffer += data
        tags: list[FlvTag] = []
        buf = self.buffer
        pos = 0
        if not self.header_done:
            if len(buf) < 9:
                return tags
            if buf[:3] != b"FLV" or buf[3] != 1:
                raise RtmpError("the encoder's output is not FLV")
            offset = struct.unpack(">I", buf[5:9])[0]
            if not 9 <= offset <= self.MAX_HEADER:
                raise RtmpError("the encoder's FLV header has a bad size")
            if len(buf) < offset + 4:
                return tags
            pos, self.header_done = offset + 4, True
        while len(buf) - pos >= 11:
            type_id = buf[pos] & 0x1F
            size = int.from_bytes(buf[pos + 1:pos + 4], "big")
            if len(buf) - pos < 11 + size + 4:
                break
            timestamp = int.from_bytes(buf[pos + 4:pos + 7], "big") | (buf[pos + 7] << 24)
            if type_id in MEDIA_CHUNK_STREAMS:
                tags.append(FlvTag(type_id, timestamp, bytes(buf[pos + 11:pos + 11 + size])))
            pos += 11 + size + 4
        del buf[:pos]
        return tags


# --- the handshake ---------------------------------------------------------------------------

def client_c1(random: Callable[[int], bytes] = os.urandom) -> bytes:
    """C1 as Flash Player (and FFmpeg) send it: time 0, version 9.0.124.2, random bytes, and an
    HMAC-SHA256 digest at the offset its bytes 8-11 give. A server that checks it (nginx-rtmp
    does, whenever the version is not zero) answers with the digest handshake."""
    c1 = bytearray(random(HANDSHAKE_SIZE))
    c1[0:8] = b"\x00\x00\x00\x00\x09\x00\x7c\x02"
    pos = sum(c1[8:12]) % 728 + 12
    digest = hmac.new(_FP_KEY, bytes(c1[:pos] + c1[pos + 32:]), hashlib.sha256).digest()
    c1[pos:pos + 32] = digest
    return bytes(c1)


def c1_digest_ok(c1: bytes) -> bool:
    pos = sum(c1[8:12]) % 728 + 12
    expected = hmac.new(_FP_KEY, c1[:pos] + c1[pos + 32:], hashlib.sha256).digest()
    return hmac.compare_digest(expected, c1[pos:pos + 32])


# --- the publisher ---------------------------------------------------------------------------

Connect = Callable[..., socket.socket]


class Publisher:
    """Publishes the FLV read from a descriptor to ``target``, in a thread of its own.

    It connects once FFmpeg's first bytes arrive. ``state``: idle -> connecting -> publishing ->
    closed (the FLV ended, or :meth:`stop`) or failed (``error`` says why, key-free).
    ``media_sent`` turns true with the first audio or video message sent: what "the encoder has
    output" means when the output is a publisher.
    """

    def __init__(self, target: RtmpTarget, *, ssl_context: ssl.SSLContext | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT_S, io_timeout: float = IO_TIMEOUT_S,
                 connect: Connect = socket.create_connection, name: str = "rtmp") -> None:
        self.target = target
        self._ssl_context = ssl_context
        self._connect_timeout = connect_timeout
        self._io_timeout = io_timeout
        self._connect = connect
        self.name = name
        self.state = "idle"
        self.error = ""
        self.bytes_sent = 0
        self.media_sent = False
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._reader = ChunkReader()
        self._received = 0
        self._acked = 0
        self._window = 2_500_000
        self._stream_id = 0
        self._next_txn = 1

    def __repr__(self) -> str:
        return f"Publisher({self.target!r}, state={self.state!r})"

    # -- control --

    def start(self, read_fd: int) -> Publisher:
        """Publish what arrives on ``read_fd`` (closed by the publisher when it ends)."""
        self._thread = threading.Thread(target=self.run, args=(read_fd,), name=f"{self.name}-publish", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float) -> bool:
        """True once the publisher has ended (within ``timeout``)."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """End now: the socket is shut down under a blocked send or receive."""
        self._stop.set()
        self._shutdown()
        self.wait(timeout)

    @property
    def failed(self) -> bool:
        return self.state == "failed"

    # -- the thread --

    def run(self, read_fd: int) -> None:
        try:
            first = self._first_bytes(read_fd)
            if first:
                self.state = "connecting"
                self._open()
                self.state = "publishing"
                log.info("%s: publishing to %s", self.name, self.target.tc_url)
                if self._pump(read_fd, first):
                    self._unpublish()
            self.state = "closed"
        except (OSError, RtmpError, ValueError) as exc:
            if self._stop.is_set():
                self.state = "closed"
            else:
                self.error = self._describe(exc)
                self.state = "failed"
                log.warning("%s: %s", self.name, self.error)
        finally:
            os.close(read_fd)  # FFmpeg's next write fails (EPIPE): it ends as with its own connection
            self._shutdown()
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.close()

    def _describe(self, exc: BaseException) -> str:
        where = self.target.tc_url
        if isinstance(exc, RtmpError):
            text = exc.message
        elif isinstance(exc, ssl.SSLCertVerificationError):
            text = f"the TLS certificate of {self.target.host} is not trusted ({exc.verify_message})"
        elif isinstance(exc, TimeoutError):
            text = ("no answer in time while connecting" if self.state == "connecting"
                    else f"the ingest took nothing for {self._io_timeout:.0f}s")
        elif isinstance(exc, ssl.SSLError):
            text = f"TLS failed ({exc.reason or exc})"
        elif isinstance(exc, OSError):
            text = exc.strerror or type(exc).__name__
        else:
            text = str(exc)
        return clean_text(self.target.redact(f"{where}: {text}"), 300)

    def _shutdown(self) -> None:
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the raw socket, TLS or not

    # -- connect and publish --

    def _open(self) -> None:
        deadline = time.monotonic() + self._connect_timeout
        sock = self._connect((self.target.host, self.target.port), timeout=self._connect_timeout)
        self._sock = sock
        if self._stop.is_set():
            raise RtmpError("stopped")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.target.tls:
            context = self._ssl_context or ssl.create_default_context()
            self._sock = sock = context.wrap_socket(sock, server_hostname=self.target.host)
        self._handshake(deadline)
        self._send(CS_CONTROL, SET_CHUNK_SIZE, 0, struct.pack(">I", CHUNK_SIZE))
        stream = self.target.stream
        connect_txn = self._command("connect", {"app": self.target.app, "type": "nonprivate",
                                                "flashVer": FLASHVER, "tcUrl": self.target.tc_url})
        self._await_result(connect_txn, deadline, "connect")
        self._command("releaseStream", None, stream)
        self._command("FCPublish", None, stream)
        create_txn = self._command("createStream", None)
        result = self._await_result(create_txn, deadline, "createStream")
        stream_id = result[3] if len(result) > 3 else None
        if not isinstance(stream_id, float) or not 0 < stream_id < 2**31:
            raise RtmpError("createStream gave no stream id")
        self._stream_id = int(stream_id)
        self._command("publish", None, stream, "live", stream_id=self._stream_id)
        self._await_publish_start(deadline)

    def _handshake(self, deadline: float) -> None:
        self._sendall(b"\x03" + client_c1())
        s0s1 = self._recv_exact(1 + HANDSHAKE_SIZE, deadline)
        if s0s1[0] != 3:
            raise RtmpError(f"not an RTMP server (handshake version {s0s1[0]})")
        self._recv_exact(HANDSHAKE_SIZE, deadline)  # S2: not checked when publishing (as FFmpeg)
        self._sendall(s0s1[1:])                     # C2: the echo of S1

    def _connected(self) -> socket.socket:
        if self._sock is None:
            raise RtmpError("not connected")
        return self._sock

    def _recv_exact(self, size: int, deadline: float) -> bytes:
        sock = self._connected()
        data = bytearray()
        while len(data) < size:
            sock.settimeout(self._remaining(deadline))
            chunk = sock.recv(size - len(data))
            if not chunk:
                raise RtmpError("the ingest closed the connection during the handshake")
            data += chunk
        return bytes(data)

    @staticmethod
    def _remaining(deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RtmpError("no answer in time while connecting")
        return left

    def _command(self, name: str, *args: Any, stream_id: int = 0) -> int:
        txn = self._next_txn
        self._next_txn += 1
        payload = amf_encode(name) + amf_encode(txn) + b"".join(amf_encode(a) for a in args)
        self._send(CS_COMMAND if stream_id == 0 else CS_DATA, COMMAND_AMF0, stream_id, payload)
        return txn

    def _await(self, deadline: float, want: Callable[[list[Any]], bool]) -> list[Any]:
        """Read until a command ``want`` accepts arrives (control messages handled meanwhile)."""
        sock = self._connected()
        while True:
            sock.settimeout(self._remaining(deadline))
            data = sock.recv(READ_SIZE)
            if not data:
                raise RtmpError("the ingest closed the connection before the publish started "
                                "(a refused key, or an app it does not have)")
            for command in self._incoming(data):
                if want(command):
                    return command

    def _await_result(self, txn: int, deadline: float, what: str) -> list[Any]:
        def matches(command: list[Any]) -> bool:
            return len(command) > 1 and command[0] in ("_result", "_error") and command[1] == txn
        command = self._await(deadline, matches)
        if command[0] == "_error":
            raise RtmpError(f"{what} refused: {self._status_text(command)}")
        return command

    def _await_publish_start(self, deadline: float) -> None:
        def matches(command: list[Any]) -> bool:
            return command[:1] == ["onStatus"] and "code" in self._info(command)
        while True:
            info = self._info(self._await(deadline, matches))
            if info.get("code") == "NetStream.Publish.Start":
                return
            if info.get("level") == "error" or str(info.get("code", "")).startswith("NetStream.Publish."):
                raise RtmpError(f"publish refused: {self._status_text(['onStatus', 0, None, info])}")

    @staticmethod
    def _info(command: list[Any]) -> dict[str, Any]:
        info = command[3] if len(command) > 3 else None
        return info if isinstance(info, dict) else {}

    def _status_text(self, command: list[Any]) -> str:
        info = self._info(command)
        words = " ".join(str(info.get(k, "")) for k in ("code", "description") if info.get(k))
        return clean_text(self.target.redact(words), 200) or "no reason given"

    def _incoming(self, data: bytes) -> list[list[Any]]:
        """Handle what the server sent; returns its commands (AMF0 value lists)."""
        self._received += len(data)
        commands = []
        for message in self._reader.feed(data):
            kind, body = message.type_id, message.payload
            if kind == WINDOW_ACK_SIZE and len(body) >= 4:
                self._window = max(1, struct.unpack(">I", body[:4])[0])
            elif kind == USER_CONTROL and len(body) >= 6 and struct.unpack(">H", body[:2])[0] == PING_REQUEST:
                self._send(CS_CONTROL, USER_CONTROL, 0, struct.pack(">H", PING_RESPONSE) + body[2:6])
            elif kind in (COMMAND_AMF0, COMMAND_AMF3):
                values = amf_decode_all(body[1:] if kind == COMMAND_AMF3 else body)
                if values and isinstance(values[0], str):
                    commands.append(values)
        if self._received - self._acked >= self._window:
            self._acked = self._received
            self._send(CS_CONTROL, ACK, 0, struct.pack(">I", self._received & 0xFFFFFFFF))
        return commands

    # -- sending --

    def _send(self, csid: int, type_id: int, stream_id: int, payload: bytes, timestamp: int = 0) -> None:
        self._sendall(chunk_message(csid, type_id, stream_id, timestamp, payload))

    def _sendall(self, data: bytes) -> None:
        sock = self._connected()
        sock.settimeout(self._io_timeout)
        sock.sendall(data)
        self.bytes_sent += len(data)

    # -- publishing --

    def _first_bytes(self, read_fd: int) -> bytes:
        """Wait for FFmpeg's first output before connecting, as FFmpeg itself opens its output
        only once its inputs are open and probed (a relay's input takes seconds): b"" when the
        pipe ends first or on :meth:`stop`."""
        while not self._stop.is_set():
            if select.select([read_fd], [], [], 1.0)[0]:
                return os.read(read_fd, READ_SIZE)
        return b""

    def _pump(self, read_fd: int, first: bytes) -> bool:
        """Send every FLV tag from ``first`` and then ``read_fd``; True at its end (FFmpeg
        finished), False when stopped."""
        sock = self._connected()
        flv = FlvReader()
        set_data_frame = amf_encode("@setDataFrame")
        data = first
        while not self._stop.is_set():
            if data:
                self._send_tags(flv.feed(data), set_data_frame)
            pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
            ready: list[int] = [] if pending else select.select([read_fd, sock.fileno()], [], [], 1.0)[0]
            if pending or sock.fileno() in ready:
                sock.settimeout(self._io_timeout)
                data = sock.recv(READ_SIZE)
                if not data:
                    raise RtmpError("the ingest closed the connection")
                for command in self._incoming(data):
                    self._check_status(command)
            data = b""
            if read_fd in ready:
                data = os.read(read_fd, READ_SIZE)
                if not data:
                    return True
        return False

    def _send_tags(self, tags: list[FlvTag], set_data_frame: bytes) -> None:
        for tag in tags:
            payload = tag.payload
            if tag.type_id == DATA_AMF0 and payload.startswith(amf_encode("onMetaData")):
                payload = set_data_frame + payload
            self._send(MEDIA_CHUNK_STREAMS[tag.type_id], tag.type_id, self._stream_id, payload, tag.timestamp)
            if tag.type_id != DATA_AMF0:
                self.media_sent = True

    def _check_status(self, command: list[Any]) -> None:
        if command[0] == "close":
            raise RtmpError("the ingest closed the stream")
        if command[0] == "onStatus" and self._info(command).get("level") == "error":
            raise RtmpError(f"the ingest ended the publish: {self._status_text(command)}")

    def _unpublish(self) -> None:
        """FCUnpublish and deleteStream, as FFmpeg does at the end (best effort)."""
        try:
            self._command("FCUnpublish", None, self.target.stream)
            self._command("deleteStream", None, float(self._stream_id))
        except OSError:
            pass
