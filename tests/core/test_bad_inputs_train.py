"""Issue 19, classes 5 and 7, through the command line: training and evaluation inputs validated like
classification inputs, and a device the machine lacks refused with one message in every command. Each error
case ends in exit status 2 and one `claire: error:` line naming the problem and the fix, before any training:
no checkpoint, report, resume file or output folder appears and the inputs are unchanged. The cases live in
tests/fixtures/bad_inputs_train.py.
"""
from __future__ import annotations

import pytest
import torch

from claire.claire_plugin.deps import PLUGIN_DIR
from claire.tests.core.test_bad_inputs import assert_inputs_untouched, cli, error_line
from claire.tests.fixtures import bad_inputs as C
from claire.tests.fixtures import bad_inputs_train as T

torch.set_num_threads(1)


def hide_gpus(monkeypatch) -> None:
    """This machine as one without CUDA or MPS, whatever it has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if getattr(torch.backends, "mps", None) is not None:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.parametrize("case_id", T.case_ids())
def test_cli_train_case(case_id, workdir, monkeypatch):
    case = T.by_id(case_id)
    tmp, ck = workdir
    run = case.build(tmp, ck)
    if run.get("no_cuda"):
        hide_gpus(monkeypatch)
    before = C.snapshot(tmp)
    rc, stdout, stderr = cli(run["cli"])
    after = C.snapshot(tmp)
    assert_inputs_untouched(before, after)
    if case.expect == "error":
        line = error_line(stderr)
        C.record("CLI", case_id, f"exit {rc}", line, tmp)
        assert rc == 2, stderr
        C.check_message(case, line)
        assert after == before, "a refused run changed or left files"
        assert not (tmp / "out" / "batch").exists(), "the output folder was created"
    else:
        assert rc == 0, stderr
        C.record("CLI", case_id, "works", run["check"](stdout, stderr, tmp), tmp)


def test_catalogue_ids_are_unique_and_documented():
    ids = T.case_ids()
    assert len(ids) == len(set(ids)) and not set(ids) & set(C.case_ids())
    for c in T.CASES:
        assert (c.problem and c.fix) if c.expect == "error" else (c.note and not c.problem), c.id
    assert set(T.titles()) <= set(C.all_titles())


def test_missing_package_names_the_install_command(monkeypatch):
    """A required package that cannot be imported (here rasterio, made to fail) gives the install command,
    not a traceback."""
    from claire.claire_plugin.cli import info

    def missing(_args):
        raise ModuleNotFoundError("No module named 'rasterio'", name="rasterio")

    monkeypatch.setattr(info, "cmd_info", missing)
    rc, _, stderr = cli(["info"])
    line = error_line(stderr)
    C.record("CLI", "missing_package", f"exit {rc}", line.replace(PLUGIN_DIR, "<plugin folder>"))
    assert rc == 2
    assert "needs Python packages that QGIS cannot import: rasterio" in line and "claire.claire_plugin.deps install" in line


def test_missing_proj_database_is_named(workdir):
    """PROJ_DATA pointing at a folder without proj.db (a broken install): `claire classify` names the problem
    and the fix in one warning line (before: only GDAL's "ERROR 1: PROJ: ... Cannot find proj.db"); rasters
    whose files spell out their CRS still classify, as before."""
    import os
    import subprocess
    import sys

    from claire.tests.core.test_bad_inputs import classify_argv

    tmp, ck = workdir
    args = C._pair(tmp, ck)
    empty = tmp / "no_proj"
    empty.mkdir()
    cmd = [sys.executable, "-m", "claire.claire_plugin.cli.main"]  # this interpreter's claire (worktrees share a venv)
    env = dict(os.environ, OMP_NUM_THREADS="1", PROJ_DATA=str(empty), PROJ_LIB=str(empty))
    proc = subprocess.run(cmd + classify_argv(args), capture_output=True, text=True, timeout=120, env=env)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("claire: warning: PROJ")]
    assert len(lines) == 1 and proc.returncode == 0, proc.stderr
    C.record("CLI", "missing_proj", "works", lines[0], tmp)
    assert f"proj.db cannot be found (PROJ_DATA={empty}" in lines[0] and "reinstall PROJ" in lines[0]
    C.check_works(args, args["output"])


def test_read_only_cache_folder_is_reported(tmp_path, monkeypatch):
    """A cache folder under a read-only home is named as such (the AOT runtime then runs eagerly with it as the
    reason); a writable one is no problem."""
    import os

    from claire.claire_plugin.core.runtime.environment import writable_folder_problem

    home = tmp_path / "home"
    home.mkdir()
    assert writable_folder_problem(str(home / ".cache" / "claire" / "aot"), "AOT cache", "CLAIRE_CACHE_DIR") is None
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if str(p) == str(home) else real(p, m))
    problem = writable_folder_problem(str(home / ".cache" / "claire" / "aot"), "AOT cache", "CLAIRE_CACHE_DIR")
    assert f"({home} is read-only: a read-only home?)" in problem and "set CLAIRE_CACHE_DIR" in problem


def test_labels_without_georeferencing_still_pair_by_size(workdir):
    """Some datasets ship labels without a CRS or transform: they line up with the optical by size, as before."""
    from claire.claire_plugin.core.errors import ClaireError
    from claire.claire_plugin.core.training.data_checks import check_grids
    from claire.claire_plugin.core.training.datasets import list_pairs

    tmp, _ = workdir
    data = T.folder(tmp, label_kwargs={"crs": None})
    check_grids(list_pairs(data, "generic", "all"))
    shifted = T.folder(tmp / "out", label_kwargs={"origin": (500010.0, 4600000.0)})
    with pytest.raises(ClaireError, match="is not on the optical raster's grid"):
        check_grids(list_pairs(shifted, "generic", "all"))
