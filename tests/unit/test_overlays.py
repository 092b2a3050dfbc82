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


# -- defect 5 (issue 7): a feed file is data from a regular file, never what a link points at -----

import threading  # noqa: E402

import pytest  # noqa: E402

from appliance.core.errors import ConfigError  # noqa: E402
from appliance.core.files import StateLayout  # noqa: E402


def test_a_symlinked_feed_never_puts_its_target_on_screen(tmp_path):
    secret = tmp_path / "credentials.json"
    secret.write_text('{"access_token": "SECRET-TOKEN-VALUE"}\n')
    folder = tmp_path / "feeds"
    folder.mkdir()
    (folder / "creds.txt").symlink_to(secret)
    (folder / "fine.txt").write_text("plain text\n")
    shown: list[str] = []
    watcher = OverlayFolder(folder, shown.append).start()
    try:
        (folder / "later.txt").symlink_to(secret)  # a link created while running
        os.replace(folder / "later.txt", folder / "later2.txt")
        time.sleep(0.5)
    finally:
        watcher.stop()
    assert shown == ["[fine] plain text"], shown
    assert not any("SECRET" in line for line in shown)


def test_a_fifo_named_txt_does_not_hang_start_up(tmp_path):
    folder = tmp_path / "feeds"
    folder.mkdir()
    os.mkfifo(folder / "pipe.txt")
    (folder / "after.txt").write_text("still shown\n")
    shown: list[str] = []
    watcher = OverlayFolder(folder, shown.append)
    started = threading.Thread(target=watcher.start, daemon=True)
    started.start()
    started.join(3)
    try:
        assert not started.is_alive(), "start-up hangs opening a FIFO named *.txt"
        assert shown == ["[after] still shown"]
    finally:
        watcher.stop()
        if started.is_alive():  # unblock the stuck open() so the test run can end
            with open(folder / "pipe.txt", "wb"):
                pass


@pytest.mark.parametrize("where", ["inside", "is", "linked"])
def test_a_feed_folder_inside_the_state_folder_is_refused(tmp_path, where):
    state = tmp_path / "state"
    state.mkdir()
    folder = {"inside": state / "overlays", "is": state, "linked": tmp_path / "link"}[where]
    if where == "linked":
        folder.symlink_to(state, target_is_directory=True)
    folder.mkdir(exist_ok=True)
    with pytest.raises(ConfigError) as err:
        OverlayFolder(folder, lambda line: None, state=StateLayout(state)).start()
    assert "overlay.watch_dir" in str(err.value)
