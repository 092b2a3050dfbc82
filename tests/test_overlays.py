import os
import time

from appliance.scene.feeds import OverlayFolder


def wait_lines(shown, n, timeout=5.0):
    deadline = time.monotonic() + timeout
    while len(shown) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return shown


def test_files_written_to_the_folder_appear_on_screen(tmp_path):
    folder = tmp_path / "overlays"
    folder.mkdir()
    (folder / "title.txt").write_text("Building a tiny tool live\n")
    (folder / "ignored.md").write_text("not an overlay")
    shown: list[str] = []
    watcher = OverlayFolder(folder, shown.append).start()
    try:
        assert shown == ["[title] Building a tiny tool live"]
        tmp = folder / ".next.tmp"
        tmp.write_text("step 2: \x1b[2Jtests\n\nstep 3: ship\n")
        os.replace(tmp, folder / "agenda.txt")  # how editors and agents write atomically
        wait_lines(shown, 3)
        assert shown[1:] == ["[agenda] step 2: tests", "[agenda] step 3: ship"]
        (folder / "agenda.txt").write_text("step 2: tests\nstep 3: ship\n")  # same text: not again
        (folder / "title.txt").write_text("x" * 20000)
        wait_lines(shown, 4)
        time.sleep(0.3)
        assert len(shown) == 4 and shown[3].startswith("[title] xxx") and len(shown[3]) < 600
    finally:
        watcher.stop()
