"""Base58 (the Bitcoin and Solana alphabet) and the check of a Solana public key: the one home
for both the config's wallet check and the sandbox's."""

from __future__ import annotations

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {char: i for i, char in enumerate(ALPHABET)}
SOLANA_KEY_BYTES = 32
_SOLANA_MAX_CHARS = 44  # 32 bytes never take more: a longer text is refused before decoding


def decode(text: str) -> bytes:
    """The bytes ``text`` encodes; ValueError for empty text or a character outside the alphabet."""
    if not text or any(char not in _INDEX for char in text):
        raise ValueError("not base58 (letters and digits without 0, O, I, l)")
    number = 0
    for char in text:
        number = number * 58 + _INDEX[char]
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\x00" * (len(text) - len(text.lstrip("1"))) + body


def encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, rem = divmod(number, 58)
        out = ALPHABET[rem] + out
    return "1" * (len(data) - len(data.lstrip(b"\x00"))) + out


def solana_key_problem(text: str) -> str | None:
    """Why ``text`` is not a Solana public key (base58 of exactly 32 bytes); None when it is one."""
    try:
        size = len(decode(text)) if len(text) <= _SOLANA_MAX_CHARS else None
    except ValueError as exc:
        return f"wallet address is {exc}"
    if size != SOLANA_KEY_BYTES:
        return f"a Solana public key decodes to {SOLANA_KEY_BYTES} bytes, this one " + (
            f"to {size}" if size is not None else f"is {len(text)} characters long")
    return None
