"""PNG and JPEG checks without Pillow: the one home for the appliance's screenshots (a
thumbnail is checked before it is uploaded) and the sandbox's ``update-thumbnail``.

An image is accepted only if it really is a PNG or a JPEG, not just something starting with
the right magic bytes:

* PNG: signature, every chunk's CRC, a valid IHDR first, at least one IDAT, IEND last, and the
  IDAT zlib stream inflates (bounded) to exactly the size the header implies.
* JPEG: SOI, a walk over well-formed marker segments up to SOS with a frame header (SOF) giving
  non-zero dimensions, and an EOI marker at the end of the entropy-coded data.

:func:`inspect_image` also decodes with Pillow when it happens to be importable (a full decode).
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PIXELS = 40_000_000
# Bits per pixel for each valid (colour type -> allowed bit depths, channels).
_PNG_COLOR = {0: ((1, 2, 4, 8, 16), 1), 2: ((8, 16), 3), 3: ((1, 2, 4, 8), 1),
              4: ((8, 16), 2), 6: ((8, 16), 4)}
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class ImageError(ValueError):
    """The bytes are not a decodable PNG or JPEG."""


@dataclass(frozen=True)
class ImageInfo:
    format: str  # "png" or "jpeg"
    width: int
    height: int
    size: int

    def as_dict(self) -> dict[str, object]:
        return {"format": self.format, "width": self.width, "height": self.height, "bytes": self.size}


def inspect_image(data: bytes) -> ImageInfo:
    """Return what the image is, or raise :class:`ImageError` saying why it is not one."""
    if data.startswith(PNG_SIGNATURE):
        info = check_png(data)
    elif data.startswith(b"\xff\xd8\xff"):
        info = check_jpeg(data)
    else:
        raise ImageError("not a PNG or JPEG image")
    _pillow_decode(data)
    return info


def _pillow_decode(data: bytes) -> None:
    try:
        from PIL import Image  # type: ignore[import-not-found]
    except ImportError:
        return
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
    except Exception as exc:
        raise ImageError(f"image does not decode: {exc}") from None


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks: list[tuple[bytes, bytes]] = []
    pos = len(PNG_SIGNATURE)
    while pos < len(data):
        if pos + 12 > len(data):
            raise ImageError("PNG truncated inside a chunk header")
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        ctype = data[pos + 4:pos + 8]
        end = pos + 8 + length
        if end + 4 > len(data):
            raise ImageError("PNG truncated inside a chunk")
        body = data[pos + 8:end]
        (crc,) = struct.unpack(">I", data[end:end + 4])
        if zlib.crc32(ctype + body) & 0xFFFFFFFF != crc:
            raise ImageError(f"PNG chunk {ctype!r} has a bad CRC")
        chunks.append((ctype, body))
        pos = end + 4
        if ctype == b"IEND":
            break
    return chunks


def check_png(data: bytes) -> ImageInfo:
    """A PNG's size, once its chunks, header and pixel data hold together; ImageError saying why not."""
    if not data.startswith(PNG_SIGNATURE):
        raise ImageError("not a PNG image")
    chunks = _png_chunks(data)
    if not chunks or chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 13:
        raise ImageError("PNG does not start with a valid IHDR")
    if chunks[-1][0] != b"IEND":
        raise ImageError("PNG has no IEND")
    width, height, depth, color, _comp, _filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if width == 0 or height == 0 or width * height > MAX_PIXELS:
        raise ImageError("PNG has invalid dimensions")
    if color not in _PNG_COLOR or depth not in _PNG_COLOR[color][0]:
        raise ImageError("PNG has an invalid colour type / bit depth")
    idat = b"".join(body for ctype, body in chunks if ctype == b"IDAT")
    if not idat:
        raise ImageError("PNG has no image data")
    if interlace == 0:
        bits_per_row = width * depth * _PNG_COLOR[color][1]
        expected = height * (1 + (bits_per_row + 7) // 8)
        _inflate_exactly(idat, expected)
    else:
        _inflate_exactly(idat, None)
    return ImageInfo("png", width, height, len(data))


def _inflate_exactly(stream: bytes, expected: int | None) -> None:
    """Inflate a zlib stream in bounded steps; check it ends and has the expected size."""
    inflater = zlib.decompressobj()
    total = 0
    limit = (expected if expected is not None else MAX_PIXELS * 8) + 1
    pending = stream
    try:
        while pending and total < limit:
            out = inflater.decompress(pending, 1 << 20)
            total += len(out)
            pending = inflater.unconsumed_tail
        total += len(inflater.flush())
    except zlib.error as exc:
        raise ImageError(f"PNG image data does not inflate: {exc}") from None
    if not inflater.eof:
        raise ImageError("PNG image data is truncated")
    if expected is not None and total != expected:
        raise ImageError("PNG image data has the wrong size for its header")


def check_jpeg(data: bytes) -> ImageInfo:
    """A JPEG's size, once its markers up to the scan and its end hold together; ImageError saying why not."""
    if not data.startswith(b"\xff\xd8\xff"):
        raise ImageError("not a JPEG image")
    pos, width, height = 2, 0, 0
    while True:
        if pos + 4 > len(data) or data[pos] != 0xFF:
            raise ImageError("JPEG marker structure is broken")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if length < 2 or pos + 2 + length > len(data):
            raise ImageError("JPEG segment runs past the end")
        if marker in _SOF_MARKERS:
            if length < 8:
                raise ImageError("JPEG frame header too short")
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        if marker == 0xD9:
            raise ImageError("JPEG ends before any image data")
        pos += 2 + length
    if width == 0 or height == 0 or width * height > MAX_PIXELS:
        raise ImageError("JPEG has no frame header or invalid dimensions")
    if data.rstrip(b"\x00")[-2:] != b"\xff\xd9":
        raise ImageError("JPEG is truncated (no end-of-image marker)")
    return ImageInfo("jpeg", width, height, len(data))
