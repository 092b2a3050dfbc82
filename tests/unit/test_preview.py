"""The console preview's JPEG splitter on literal bytes."""

from __future__ import annotations

from appliance.media.preview import split_jpegs


def test_split_jpegs_keeps_a_partial_frame() -> None:
    a, b = b"\xff\xd8aaa\xff\xd9", b"\xff\xd8bb"
    frames, rest = split_jpegs(a + a + b)
    assert frames == [a, a] and rest == b
    frames, rest = split_jpegs(rest + b"b\xff\xd9junk")
    assert frames == [b"\xff\xd8bbb\xff\xd9"] and rest == b""
