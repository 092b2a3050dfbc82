"""The RTMP publisher's pieces without a network: targets split as FFmpeg splits them, AMF0,
chunks both ways (extended timestamps, chunk-size changes, every header type), FLV from any
cut of the pipe, the handshake digest, and the bounds on what a server or the pipe can make
it hold."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.media.rtmp import (
    ABORT,
    AUDIO,
    COMMAND_AMF0,
    MAX_INCOMING,
    SET_CHUNK_SIZE,
    VIDEO,
    ChunkReader,
    FlvReader,
    Message,
    RtmpError,
    RtmpTarget,
    amf_decode_all,
    amf_encode,
    c1_digest_ok,
    chunk_message,
    client_c1,
)

KEY = "sk_live_0123456789abcdef"


@pytest.mark.parametrize(("url", "app", "stream", "tc_url"), [
    (f"rtmps://ingest.retake.tv/live/{KEY}", "live", KEY, "rtmps://ingest.retake.tv/live"),
    (f"rtmp://127.0.0.1:1935/live/{KEY}", "live", KEY, "rtmp://127.0.0.1/live"),
    (f"rtmp://h:1936/app/inst/{KEY}", "app/inst", KEY, "rtmp://h:1936/app/inst"),
    (f"rtmp://h/app/{KEY}?token=1&x=y", "app", f"{KEY}?token=1&x=y", "rtmp://h/app"),
    (f"rtmp://[::1]:2000/live/{KEY}", "live", KEY, "rtmp://[::1]:2000/live"),
])
def test_targets_split_as_ffmpeg_does_and_never_show_the_key(url: str, app: str, stream: str, tc_url: str) -> None:
    target = RtmpTarget.parse(url)
    assert (target.app, target.stream, target.tc_url) == (app, stream, tc_url)
    assert target.tls == url.startswith("rtmps")
    assert KEY not in repr(target) and KEY not in target.tc_url
    assert target.redact(f"refused {KEY}") == "refused <key redacted>"


@pytest.mark.parametrize("url", ["rtmp://h/live", "rtmp:///live/k", "http://h/live/k", "rtmp://h:x/live/k", "rtmp://h//k"])
def test_a_target_without_app_and_key_is_refused(url: str) -> None:
    with pytest.raises(RtmpError):
        RtmpTarget.parse(url)


def test_amf0_round_trip_and_the_shapes_servers_send() -> None:
    values = ["_result", 1.0, None, {"level": "status", "code": "NetStream.Publish.Start", "n": 2.5, "ok": True}]
    assert amf_decode_all(b"".join(amf_encode(v) for v in values)) == values
    assert amf_encode("x" * 70000)[:1] == b"\x0c"  # long string
    assert amf_decode_all(amf_encode("x" * 70000)) == ["x" * 70000]
    ecma = b"\x08" + struct.pack(">I", 1) + struct.pack(">H", 1) + b"a" + amf_encode(1) + b"\x00\x00\x09"
    assert amf_decode_all(ecma + b"\x06" + b"\x0a" + struct.pack(">I", 2) + amf_encode(1) + amf_encode("b")) == \
        [{"a": 1.0}, None, [1.0, "b"]]
    for bad in (b"\x02\x00\x05ab", b"\x11", b"\x0a\xff\xff\xff\xff", b"\x03" * 40):
        with pytest.raises(RtmpError):
            amf_decode_all(bad)


def test_chunks_round_trip_with_extended_timestamps_and_a_new_chunk_size() -> None:
    payload = bytes(range(256)) * 60                      # 15360 bytes: 4 chunks of 4096
    late = 5 * 3600 * 1000                                # past 0xFFFFFF ms: the extended field
    wire = chunk_message(6, VIDEO, 1, 33, payload) + chunk_message(4, AUDIO, 1, late, payload[:5000])
    assert wire.count(bytes([0xC6])) >= 3
    reader = ChunkReader()
    reader.chunk_size = 4096
    got = []
    for i in range(0, len(wire), 777):                    # any cut of the socket's reads
        got += reader.feed(wire[i:i + 777])
    assert got == [Message(VIDEO, 1, 33, payload), Message(AUDIO, 1, late, payload[:5000])]
    # a Set Chunk Size applies to the very next chunk of the same read
    set_size = chunk_message(2, SET_CHUNK_SIZE, 0, 0, struct.pack(">I", 100), chunk_size=128)
    after = chunk_message(3, COMMAND_AMF0, 0, 0, b"z" * 250, chunk_size=100)
    assert ChunkReader().feed(set_size + after)[-1] == Message(COMMAND_AMF0, 0, 0, b"z" * 250)


def test_chunk_header_types_1_2_3_accumulate_timestamps() -> None:
    reader = ChunkReader()
    first = chunk_message(5, COMMAND_AMF0, 0, 1000, b"abc", chunk_size=128)
    type1 = bytes([0x40 | 5]) + (10).to_bytes(3, "big") + (2).to_bytes(3, "big") + bytes([AUDIO]) + b"de"
    type2 = bytes([0x80 | 5]) + (20).to_bytes(3, "big") + b"fg"
    type3 = bytes([0xC0 | 5]) + b"hi"
    assert [(m.type_id, m.timestamp, m.payload) for m in reader.feed(first + type1 + type2 + type3)] == \
        [(COMMAND_AMF0, 1000, b"abc"), (AUDIO, 1010, b"de"), (AUDIO, 1030, b"fg"), (AUDIO, 1050, b"hi")]
    # two-byte and three-byte chunk stream ids
    wide = bytes([0x00, 200 - 64]) + (0).to_bytes(3, "big") + (1).to_bytes(3, "big") + bytes([AUDIO]) + b"\0" * 4 + b"x"
    assert reader.feed(wide) == [Message(AUDIO, 0, 0, b"x")]


def test_what_a_server_sends_is_bounded() -> None:
    too_big = bytes([3]) + b"\0\0\0" + (MAX_INCOMING + 1).to_bytes(3, "big") + bytes([COMMAND_AMF0]) + b"\0" * 4
    with pytest.raises(RtmpError, match="message"):
        ChunkReader().feed(too_big)
    with pytest.raises(RtmpError, match="unknown chunk stream"):
        ChunkReader().feed(bytes([0xC0 | 9]) + b"x")
    with pytest.raises(RtmpError, match="chunk size of 0"):
        ChunkReader().feed(chunk_message(2, SET_CHUNK_SIZE, 0, 0, struct.pack(">I", 0)))
    reader = ChunkReader()
    half = chunk_message(7, COMMAND_AMF0, 0, 0, b"q" * 200, chunk_size=128)[:140]
    assert reader.feed(half) == []
    reader.feed(chunk_message(2, ABORT, 0, 0, struct.pack(">I", 7)))  # drops the partial message
    assert not reader.streams[7].partial


def flv(tags: list[tuple[int, int, bytes]]) -> bytes:
    out = b"FLV\x01\x05" + struct.pack(">I", 9) + b"\0\0\0\0"
    for type_id, ts, payload in tags:
        out += (bytes([type_id]) + len(payload).to_bytes(3, "big") + (ts & 0xFFFFFF).to_bytes(3, "big")
                + bytes([ts >> 24]) + b"\0\0\0" + payload + struct.pack(">I", 11 + len(payload)))
    return out


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=30))
def test_flv_tags_come_out_whole_from_any_cut_of_the_pipe(cuts: list[int]) -> None:
    tags = [(18, 0, amf_encode("onMetaData") + amf_encode({"width": 1280.0})), (9, 0, b"\x17\x00" + b"v" * 300),
            (8, 23, b"\xaf\x01" + b"a" * 50), (9, 0x1234567, b"\x27\x01" + b"w" * 90), (7, 40, b"skipped")]
    data = flv(tags)
    reader, got, pos = FlvReader(), [], 0
    for cut in cuts:
        got += reader.feed(data[pos:pos + cut])
        pos += cut
    got += reader.feed(data[pos:])
    assert [(t.type_id, t.timestamp, t.payload) for t in got] == tags[:4]  # type 7 is not FLV media
    assert not reader.buffer


def test_what_is_not_flv_is_refused() -> None:
    with pytest.raises(RtmpError, match="not FLV"):
        FlvReader().feed(b"GIF89a\x01\x02\x03\x04")
    with pytest.raises(RtmpError, match="header"):
        FlvReader().feed(b"FLV\x01\x05" + struct.pack(">I", 1 << 20))


def test_c1_carries_the_flash_player_digest() -> None:
    c1 = client_c1()
    assert len(c1) == 1536 and c1[4:8] == b"\x09\x00\x7c\x02" and c1_digest_ok(c1)
    assert not c1_digest_ok(c1[:100] + bytes([c1[100] ^ 1]) + c1[101:])  # any byte changed breaks it
