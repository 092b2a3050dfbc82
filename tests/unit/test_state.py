"""state.json: what survives a crash. A file that cannot be used must never crash-loop the
controller: it is kept as state.json.corrupt and the appliance starts fresh."""

from __future__ import annotations

import json

import pytest

from appliance.core.store import StateStore


@pytest.mark.parametrize("content", [
    "[]", '"a string"', "42", "null", "{not json", '{"seen_comment_ids": 5}', '{"stream_starts": ["soon"]}',
    '{"stream_count": true}', '{"last_stream": []}', '{"newest_comment_ts": "yesterday"}', "[" * 100_000,
], ids=["list", "string", "number", "null", "not-json", "ids-a-number", "starts-text", "count-bool",
        "stats-list", "ts-text", "deep"])
def test_a_state_file_of_the_wrong_shape_is_kept_aside_and_the_appliance_starts_fresh(tmp_path, content):
    path = tmp_path / "state.json"
    path.write_text(content)
    store = StateStore(tmp_path)
    assert store.data.stream_count == 0 and store.data.stream_starts == []
    assert (tmp_path / "state.json.corrupt").read_text() == content
    store.update(stream_count=1)
    assert StateStore(tmp_path).data.stream_count == 1


def test_a_good_state_file_is_read_back_and_older_names_still_count(tmp_path):
    (tmp_path / "state.json").write_text(json.dumps({
        "stream_count": 3, "restart_times": [1.5, 2], "seen_comment_ids": ["a", "b"], "newest_comment_ts": 7,
        "chat_baselined": True, "future_field": {"kept": "ignored"}}))
    store = StateStore(tmp_path)
    assert store.data.stream_count == 3 and store.data.stream_starts == [1.5, 2]
    assert store.seen("a") and store.data.chat_baselined is True
    assert not (tmp_path / "state.json.corrupt").exists()
