from appliance.core.sanitize import clean_name, clean_text


def test_escape_sequences_and_controls_are_removed():
    hostile = "hi\x1b[2J\x1b[31mred\x1b]0;pwned\x07\x1bPq#0\x1b\\ \x9b1m\r\nnext\x00\u202eevil"
    out = clean_text(hostile)
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out and "\u202e" not in out
    assert all(ch.isprintable() for ch in out)
    assert out.startswith("hired") and "next" in out and "evil" in out


def test_bounded():
    out = clean_text("x" * 10_000, 50)
    assert len(out) == 50 and out.endswith("…")


def test_names():
    assert clean_name("\x1b[31m") == "viewer"
    assert clean_name("a" * 100) == "a" * 31 + "…"
