from __future__ import annotations

import os
from pathlib import Path

import pytest

from contraclust.errors import RunDirectoryError
from contraclust.utils import atomic_write_text, run_lock


def test_atomic_write_replaces_whole_file_with_usual_mode(tmp_path: Path) -> None:
    path = tmp_path / "a" / "f.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in path.parent.iterdir()] == ["f.txt"]  # no temporary left


def test_second_holder_of_a_run_lock_is_refused(tmp_path: Path) -> None:
    with (
        run_lock(tmp_path),
        pytest.raises(RunDirectoryError, match=r"in use by process .*:\d+"),
        run_lock(tmp_path),
    ):
        pass
    assert not (tmp_path / ".lock").exists()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    import socket

    (tmp_path / ".lock").write_text(f"{socket.gethostname()}:999999999")
    with run_lock(tmp_path):
        assert (tmp_path / ".lock").read_text().endswith(str(os.getpid()))
