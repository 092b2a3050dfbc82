"""The one PNG/JPEG check (appliance/core/images.py) on images built in memory: what the
appliance's screenshots and the sandbox's update-thumbnail both trust."""

from __future__ import annotations

import struct
import zlib

import pytest

from appliance.core.errors import MediaError
from appliance.core.images import ImageError, check_png, inspect_image
from appliance.media.display import png_size


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(width: int, height: int, rows: bytes | None = None) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    pixels = rows if rows is not None else (b"\x00" + b"\x10\x20\x30" * width) * height
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(pixels))
            + chunk(b"IEND", b""))


def test_a_whole_png_gives_its_size_to_both_users() -> None:
    data = png(64, 36)
    assert (check_png(data).width, check_png(data).height) == (64, 36)
    assert inspect_image(data).as_dict() == {"format": "png", "width": 64, "height": 36, "bytes": len(data)}
    assert png_size(data) == (64, 36)


@pytest.mark.parametrize("broken, why", [
    (lambda d: d[: len(d) // 2], "truncated"),
    (lambda d: d[:40] + bytes([d[40] ^ 1]) + d[41:], "bad CRC"),
    (lambda d: png(64, 36, rows=(b"\x00" + b"\x01" * 192) * 360), "wrong size"),  # a header that lies
    (lambda d: b"GIF89a" + d[6:], "not a PNG"),
])
def test_a_png_that_does_not_hold_together_is_refused_saying_why(broken, why) -> None:
    data = broken(png(64, 36))
    with pytest.raises(ImageError, match=why):
        check_png(data)
    with pytest.raises(MediaError, match=why):
        png_size(data)
