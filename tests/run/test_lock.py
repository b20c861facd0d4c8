"""One writer per output folder: the flock-based lock of ``brats_goat.run.lock``.

flock locks belong to open files, so two ``lock_folders`` in this one process conflict as
two processes would; the PID in a refusal and a SIGKILLed holder need a real second process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from brats_goat.run import lock
from brats_goat.run.lock import LOCK_NAME, FolderBusy, lock_folders, shard_lock_name
from brats_goat.run.shard import Shard

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def quick_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A busy lock is retried for RETRY_S before the refusal; these tests need no wait."""
    monkeypatch.setattr(lock, "RETRY_S", 0.2)


def holder(folder: Path, shard: str | None = None) -> subprocess.Popen:
    """A second process that holds ``folder``'s lock until it is killed."""
    shard_arg = f"parse_shard({shard!r})" if shard else "None"
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from brats_goat.run.lock import lock_folders
        from brats_goat.run.shard import parse_shard
        with lock_folders([("OUTPUT", Path({str(folder)!r}))], {shard_arg}):
            print("locked", flush=True)
            time.sleep(600)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def out(folder: Path) -> list[tuple[str, Path]]:
    return [("OUTPUT", folder)]


def test_second_run_is_refused_naming_folder_and_pid(tmp_path: Path) -> None:
    proc = holder(tmp_path)
    try:
        with pytest.raises(FolderBusy) as err, lock_folders(out(tmp_path), None):
            pass
        message = str(err.value)
        assert f"OUTPUT {tmp_path} is in use" in message and f"PID {proc.pid} " in message
        with pytest.raises(FolderBusy), lock_folders(out(tmp_path), Shard(1, 2)):
            pass  # a shard cannot join a plain run either
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_holder_never_blocks_the_next_run(tmp_path: Path) -> None:
    proc = holder(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (tmp_path / LOCK_NAME).exists()  # SIGKILL: no cleanup, but the flock died with it
    with lock_folders(out(tmp_path), None) as locked:
        assert locked
    assert list(tmp_path.iterdir()) == [], "the lock file is removed at the end of a run"


def test_shards_of_one_run_share_the_folder_but_not_a_shard(tmp_path: Path) -> None:
    proc = holder(tmp_path, "1/2")
    try:
        with lock_folders(out(tmp_path), Shard(2, 2)):
            assert (tmp_path / shard_lock_name(Shard(2, 2))).exists()
            with pytest.raises(FolderBusy) as err, lock_folders(out(tmp_path), None):
                pass
            assert f"shard 1/2: PID {proc.pid} " in str(err.value)
        with pytest.raises(FolderBusy) as err, lock_folders(out(tmp_path), Shard(1, 2)):
            pass
        assert f"shard 1/2: PID {proc.pid} " in str(err.value)
        # Shard 2 ended while shard 1 still runs: the shared lock file stays for shard 1.
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            LOCK_NAME,
            shard_lock_name(Shard(1, 2)),
        ]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()


def test_the_last_shard_removes_the_shared_lock_file(tmp_path: Path) -> None:
    with lock_folders(out(tmp_path), Shard(1, 2)), lock_folders(out(tmp_path), Shard(2, 2)):
        pass
    assert list(tmp_path.iterdir()) == []


def test_report_folder_is_locked_too(tmp_path: Path) -> None:
    output, other, reports = tmp_path / "out", tmp_path / "other", tmp_path / "reports"
    for folder in (output, other, reports):
        folder.mkdir()
    folders = [("OUTPUT", output), ("the report folder", reports)]
    with lock_folders(folders, None):
        with (
            pytest.raises(FolderBusy, match="the report folder"),
            lock_folders([("OUTPUT", other), ("the report folder", reports)], None),
        ):
            pass
        assert (reports / LOCK_NAME).exists()
    assert list(output.iterdir()) == list(other.iterdir()) == list(reports.iterdir()) == []
