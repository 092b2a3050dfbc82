"""No stream key in any command line (issue 17, item 6): `appliance up` live on the sandbox with
a simulcast output, and every process on the host read as another local user would read it
(``ps -eo args`` is /proc/<pid>/cmdline). Before, FFmpeg's argv held ``rtmp://.../live/<key>``
and each relay's argv its output's key; the recordings of both ingests still decode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.sandbox import requires_nginx
from tests.support.show import AcceptingCallbacks, LiveAppliance, ffprobe_json
from tests.support.tree import descendants, process_name, wait_until

SIMULCAST_KEY = "live_987654_simulcastSECRET"


def processes_holding(secrets: list[str]) -> list[str]:
    """'pid name: where' for every process whose cmdline (or environment, where readable) holds a secret."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        for part in ("cmdline", "environ"):
            try:
                data = (entry / part).read_bytes().decode("utf-8", "replace")
            except OSError:
                continue  # gone, or not ours to read
            found += [f"{entry.name} {process_name(int(entry.name))}: {part}" for s in secrets if s in data]
    return found


@requires_nginx
@pytest.mark.timeout(300)
def test_no_stream_key_in_any_process_while_live_with_simulcast(rtmp_sandbox, tmp_path: Path) -> None:
    from appliance.sandbox.rtmp import RtmpIngest
    sb = rtmp_sandbox
    callbacks = AcceptingCallbacks()
    second = RtmpIngest(callback_base=callbacks.url)
    second.start()
    key_file = tmp_path / "second.key"
    key_file.write_text(SIMULCAST_KEY + "\n")
    key_file.chmod(0o600)
    outputs = [{"name": "second", "url": second.url, "key_file": str(key_file)}]
    try:
        with LiveAppliance(sb, tmp_path, name="ArgvAgent", extra={"simulcast": {"outputs": outputs}}) as app:
            app.start()
            wait_until(lambda: any(r["size"] > 30_000 for r in second.recordings()), 60, "the simulcast copy")
            rtmp_key = sb.platform.agents[app.user].rtmp_key
            assert rtmp_key and rtmp_key in sb.platform.agents[app.user].publishing_key  # live with this key
            assert app.proc is not None
            tree = descendants(app.proc.pid)
            ffmpegs = [pid for pid in tree if process_name(pid) == "ffmpeg"]
            assert len(ffmpegs) == 2, ffmpegs  # the encoder and the simulcast relay, both looked at below
            leaks = processes_holding([rtmp_key, SIMULCAST_KEY])
            assert leaks == [], leaks
            for pid in ffmpegs:
                args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                assert any(a.startswith(b"pipe:") or b"]pipe:" in a for a in args), args
            assert app.stop() == 0
        main = app.recording()
        copy = max(second.recordings(), key=lambda r: r["size"])
        for path in (main, Path(copy["path"])):
            codecs = {s["codec_type"]: s["codec_name"] for s in ffprobe_json(path, "-show_streams")["streams"]}
            assert codecs == {"video": "h264", "audio": "aac"}, (path, codecs)
        assert os.stat(key_file).st_mode & 0o777 == 0o600
    finally:
        second.cleanup()
        callbacks.close()
