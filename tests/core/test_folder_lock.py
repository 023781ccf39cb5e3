"""core.io.folder_lock and the batch that holds it: two batches never write into one output folder at once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from claire.claire_plugin.core.batch import classify_pairs
from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.io.folder_lock import LOCK_NAME, folder_lock
from claire.claire_plugin.core.io.pairing import pair_folders
from claire.claire_plugin.core.params import run_options
from claire.tests.core.test_batch import folders  # noqa: F401  (a fixture)

_HOLD = textwrap.dedent("""
    import sys, time
    from claire.claire_plugin.core.io.folder_lock import folder_lock
    with folder_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(120)
""")


def _holder(folder: str) -> subprocess.Popen:
    """Another process holding the folder's lock (as a cron batch still running would)."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, folder], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.stdout.readline().strip() == "held"
    return proc


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    proc.stdout.close()


def test_a_second_lock_is_refused_naming_the_holder_and_freed_when_the_holder_dies(tmp_path):
    proc = _holder(str(tmp_path))
    try:
        with pytest.raises(ClaireError) as info:
            with folder_lock(str(tmp_path)):
                pass
        said = str(info.value)
        assert said.startswith(f"another CLAIRE batch is writing into the output folder '{tmp_path}' (process "
                               f"{proc.pid} on ") and "choose another folder (--output-folder)" in said
    finally:
        _kill(proc)  # a crash: nothing removes the file, the system drops the lock
    assert (tmp_path / LOCK_NAME).exists()
    with folder_lock(str(tmp_path)):
        assert (tmp_path / LOCK_NAME).exists()
    assert not (tmp_path / LOCK_NAME).exists()  # removed when the block ends, even after a stale one


def test_the_lock_is_released_when_the_block_fails(tmp_path):
    with pytest.raises(RuntimeError):
        with folder_lock(str(tmp_path)):
            raise RuntimeError("a batch failing")
    with folder_lock(str(tmp_path)):  # would raise ClaireError were it still held
        pass


def test_a_batch_into_a_folder_another_batch_writes_is_refused_before_any_work(folders, tmp_path,  # noqa: F811
                                                                               tiny_checkpoint):
    """QA (round 17, left then: "two overlapping cron batches both do the work (use flock)"): a second batch
    into the folder classified every pair again over the first's maps and wrote its own summary."""
    opt_dir, sar_dir = folders
    out = tmp_path / "out"
    out.mkdir()
    proc = _holder(str(out))
    try:
        with pytest.raises(ClaireError, match="another CLAIRE batch is writing into the output folder"):
            classify_pairs(pair_folders(opt_dir, sar_dir, ""), run_options(checkpoint=tiny_checkpoint, threads=1),
                           str(out), skip_existing=True)
        assert sorted(os.listdir(out)) == [LOCK_NAME]  # no map, no summary
    finally:
        _kill(proc)
    summary = classify_pairs(pair_folders(opt_dir, sar_dir, ""), run_options(checkpoint=tiny_checkpoint, threads=1),
                             str(tmp_path / "new" / "out"))  # a folder the batch makes: locked once made
    assert summary.count("ok") == 3 and not (tmp_path / "new" / "out" / LOCK_NAME).exists()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="runs the batches as two other users")
def test_a_lock_file_left_by_another_users_killed_batch_does_not_block_the_next_user():
    """QA (round 19, review): a batch killed outright (SIGKILL, the OOM killer) left its lock file 0644, and the next
    user of a folder shared by a group was told "cannot create the lock file ...; choose a folder you can write
    to"; the lock itself had gone with the process, and a lock can be taken on a file opened for reading."""
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="claire-shared-", dir="/tmp")
    os.chmod(folder, 0o777)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    try:
        first = subprocess.Popen([sys.executable, "-c", _HOLD, folder], stdout=subprocess.PIPE, text=True, env=env,
                                 user=65533)
        assert first.stdout.readline().strip() == "held"
        second = [sys.executable, "-c", "import sys\nfrom claire.claire_plugin.core.io.folder_lock import "
                  "folder_lock\nwith folder_lock(sys.argv[1]):\n    print('ran')", folder]
        busy = subprocess.run(second, capture_output=True, text=True, env=env, user=65534, timeout=60)
        assert busy.returncode != 0 and "another CLAIRE batch is writing into the output folder" in busy.stderr
        _kill(first)
        assert os.stat(os.path.join(folder, LOCK_NAME)).st_uid == 65533  # left behind by the killed batch
        free = subprocess.run(second, capture_output=True, text=True, env=env, user=65534, timeout=60)
        assert free.returncode == 0 and free.stdout.strip() == "ran", free.stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_file_system_without_locks_runs_the_batch_unlocked(tmp_path, monkeypatch):
    """Mutation check (round 19): a share whose file system has no locks (ENOLCK) runs as before, unlocked; it must
    not be read as "another CLAIRE batch is writing"."""
    import errno
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with folder_lock(str(tmp_path)):
        assert (tmp_path / LOCK_NAME).exists()


def test_a_lock_file_removed_between_open_and_lock_is_opened_again(tmp_path, monkeypatch):
    """Mutation check (round 19): the run that held the lock may remove its file between this run's open and its
    lock; the lock is then taken on a file no one else can find, so the file is opened again."""
    from claire.claire_plugin.core.io import folder_lock as lock_module

    real_open, calls = os.open, []

    def racing_open(path, flags, mode=0o777):
        fd = real_open(path, flags, mode)
        calls.append(path)
        if len(calls) == 1:
            os.unlink(path)
        return fd

    monkeypatch.setattr(lock_module.os, "open", racing_open)
    with folder_lock(str(tmp_path)):
        assert (tmp_path / LOCK_NAME).exists() and len(calls) == 2


def test_the_lock_is_taken_before_the_earlier_summary_is_read_and_held_in_a_new_folder(
        folders, tmp_path, tiny_checkpoint, monkeypatch):  # noqa: F811
    """Mutation check (round 19): --skip-existing decides from the earlier summary, which a batch writing there would
    change, so a refused batch reads nothing; a batch into a folder it makes holds the lock while its pairs run."""
    from claire.claire_plugin.core import batch

    opt_dir, sar_dir = folders
    out = tmp_path / "out"
    out.mkdir()
    read = []
    real = batch._earlier_records
    monkeypatch.setattr(batch, "_earlier_records", lambda d: read.append(d) or real(d))
    proc = _holder(str(out))
    try:
        with pytest.raises(ClaireError, match="another CLAIRE batch"):
            classify_pairs(pair_folders(opt_dir, sar_dir, ""), run_options(checkpoint=tiny_checkpoint, threads=1),
                           str(out), skip_existing=True)
    finally:
        _kill(proc)
    assert read == []
    new = tmp_path / "new" / "out"
    held = []
    classify_pairs(pair_folders(opt_dir, sar_dir, ""), run_options(checkpoint=tiny_checkpoint, threads=1), str(new),
                   on_pair=lambda i, n, record, result: held.append((new / LOCK_NAME).exists()))
    assert held == [True, True, True]


def test_a_folder_one_cannot_write_is_named_as_such(tmp_path, monkeypatch):
    """QA round 20: a read-only output folder was reported as "(No such file or directory)": the read-only open's
    reason (there was no lock file to open) instead of the create's (permission denied)."""
    import claire.claire_plugin.core.io.folder_lock as fl

    real_open = os.open

    def read_only_folder(path, flags, *mode):
        if path.endswith(LOCK_NAME):
            if flags & os.O_CREAT:
                raise PermissionError(13, "Permission denied")
            raise FileNotFoundError(2, "No such file or directory")
        return real_open(path, flags, *mode)

    monkeypatch.setattr(fl.os, "open", read_only_folder)
    with pytest.raises(ClaireError, match=r"lock file .* \(Permission denied\); choose a folder you can write to"):
        with folder_lock(str(tmp_path)):
            pass
