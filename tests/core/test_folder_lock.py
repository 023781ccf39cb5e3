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
