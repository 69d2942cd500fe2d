"""Writing cached and reported files: whole or not at all, never a part."""
from __future__ import annotations

import pytest

from lipsync.resources import replacing


def test_a_finished_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "record.json"
    with replacing(path) as temp:
        assert temp.parent == path.parent and temp.name.startswith(".record.json.")
        temp.write_text("new")
    assert path.read_text() == "new"
    assert [p.name for p in path.parent.iterdir()] == ["record.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "record.json"
    path.write_text("old")
    with pytest.raises(RuntimeError), replacing(path) as temp:
        temp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_parallel_writers_have_their_own_temporary(tmp_path):
    path = tmp_path / "record.json"
    with replacing(path) as first, replacing(path) as second:
        assert first != second
        first.write_text("a")
        second.write_text("b")
    assert path.read_text() == "a"  # the outer block ends last
