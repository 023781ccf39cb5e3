"""core.cluster: the classify-folder batch on a real Dask cluster (scheduler + 2 worker processes).

Every cluster run is compared with a local run of the same folder: same files, byte-equal pixels, same
summary (timings aside). A killed worker, a failing pair, cancelling and an unreachable scheduler are
exercised with real processes.
"""
from __future__ import annotations

import os
import threading
import time

import pytest

from claire.claire_plugin.core import cluster
from claire.claire_plugin.core.batch import classify_pairs
from claire.claire_plugin.core.cluster import DaskExecutor, SchedulerSpec, parse_scheduler
from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.io.pairing import pair_folders
from claire.claire_plugin.core.params import run_options
from claire.claire_plugin.core.worker_probe import compare, probe
from claire.tests.fixtures.cluster_folders import assert_same_outputs, hidden_files, make_folders, rasters
from claire.tests.fixtures.dask_cluster import free_port

ARGS = ["--tile-size", "32", "--context", "16", "--threads", "1"]


def _cli(opt_dir, sar_dir, out, checkpoint, *extra):
    from claire.claire_plugin.cli.main import main

    return main(["classify-folder", "--optical-folder", opt_dir, "--sar-folder", sar_dir, "--output-folder", out,
                 "--checkpoint", checkpoint, "--confidence", "--quiet", *ARGS, *extra])


def test_scheduler_text_is_parsed_or_refused(monkeypatch):
    monkeypatch.setattr(cluster, "cpu_cores", lambda: 2)
    assert parse_scheduler("") is None and parse_scheduler(None) is None
    assert parse_scheduler("local:3") == SchedulerSpec(local_workers=3)
    assert parse_scheduler("local") == SchedulerSpec(local_workers=cluster.DEFAULT_LOCAL_WORKERS)
    assert parse_scheduler(" tcp://10.0.0.5:8786 ") == SchedulerSpec(address="tcp://10.0.0.5:8786")
    assert parse_scheduler("TCP://Node-1:8786/") == SchedulerSpec(address="tcp://Node-1:8786")
    assert parse_scheduler("tcp://[::1]:8786") == SchedulerSpec(address="tcp://[::1]:8786")
    assert parse_scheduler("LOCAL:2") == SchedulerSpec(local_workers=2)
    assert parse_scheduler("local:4") == SchedulerSpec(local_workers=4)
    for bad, words in [("10.0.0.5:8786", "tcp://HOST:PORT"), ("local:0", "at least 1"), ("tcp://h", "tcp://"),
                       ("local:5", r"5 worker processes on this machine's 2 CPU cores.*at most local:4, best local:2"),
                       ("tcp://[::1:8786", "an IPv6 host in brackets")]:
        with pytest.raises(ClaireError, match=words):
            parse_scheduler(bad)


def test_worker_probe_lines_name_the_fix(tmp_path):
    here = probe("claire", [])
    assert here["claire"] and here["torch"] and "error" not in here
    found = {"tcp://a:1": dict(here, missing_paths=[]),
             "tcp://b:1": dict(here, claire="0.0.9"),
             "tcp://c:1": {"error": "cannot import claire: ModuleNotFoundError: No module named 'claire'"},
             "tcp://d:1": dict(here, missing_paths=["/data/out"])}
    lines = compare(here, found, ["/data/out"])
    assert len(lines) == 3
    assert "tcp://b:1 has CLAIRE 0.0.9" in lines[0] and "pip install -r requirements.txt" in lines[0]
    assert "No module named 'claire'" in lines[1] and "restart the workers" in lines[1]
    assert "does not see /data/out" in lines[2] and "shared" in lines[2]


def test_unreachable_scheduler_is_one_clear_error_before_any_work(tmp_path, monkeypatch, tiny_checkpoint, capsys):
    opt_dir, sar_dir = make_folders(str(tmp_path), names=("a",), bad=False)
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1.0)
    start = time.monotonic()
    code = _cli(opt_dir, sar_dir, str(tmp_path / "out"), tiny_checkpoint, "--scheduler",
                f"tcp://127.0.0.1:{free_port()}")
    assert code == 2 and time.monotonic() - start < 15
    err = capsys.readouterr().err
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:" in err and "dask scheduler" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_a_checkpoint_the_workers_do_not_see_or_see_otherwise_is_found_before_any_work(tmp_path):
    """QA (round 19, cluster): a checkpoint in the user's home folder, not shared, failed half the pairs with "does
    not exist"; another file at the same path on one worker mixed two models in one batch without a word."""
    model = tmp_path / "my_model.safetensors"
    model.write_bytes(b"the client's checkpoint")
    here = probe("claire", [], [str(model)])
    assert here["files"][str(model)][0] == len(b"the client's checkpoint")
    other = dict(here, missing_paths=[], files={str(model): [23, "0" * 64]})
    lines = compare(here, {"tcp://a:1": dict(here, missing_paths=[]), "tcp://b:1": other,
                           "tcp://c:1": dict(here, missing_paths=[str(model)])}, [str(model)])
    assert len(lines) == 2
    assert lines[0].startswith(f"tcp://b:1 reads another file at {model} (its size or SHA-256 differs")
    assert f"tcp://c:1 does not see {model}; inputs, the checkpoint and the output folder" in lines[1]
    # QA (round 19, review): a checkpoint the workers' user cannot read (0600 under umask 077) passed the probe
    locked = dict(here, missing_paths=[], files={}, unreadable={str(model): "Permission denied"})
    assert compare(here, {"tcp://d:1": locked}, [str(model)]) == [
        f"tcp://d:1 cannot read {model} (Permission denied); let the user the workers run as read it (its "
        f"permissions, or a umask that made it private to you)"]


def test_an_address_that_does_not_speak_dask_is_one_clear_error_not_a_hang(monkeypatch):
    """QA (round 19, cluster): the scheduler's dashboard port or any web server as the address hung the batch
    forever (Dask's timeout does not cover its handshake); a worker's address ended in an internal error."""
    import socket

    pytest.importorskip("distributed")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()  # accepts, says nothing
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    start = time.monotonic()
    try:
        with pytest.raises(ClaireError, match=r"accepts connections but no Dask scheduler answered there within "
                                              r"6 s \(a dashboard or web port"):
            DaskExecutor(SchedulerSpec(address=address), connect_timeout=1.0)
        assert time.monotonic() - start < 30
    finally:
        for conn, _peer in held:
            conn.close()
        server.close()
    distributed = pytest.importorskip("distributed")

    def not_dask(*_a, **_k):
        raise TypeError("Worker.identity() got an unexpected keyword argument 'n_workers'")

    monkeypatch.setattr(distributed, "Client", not_dask)
    with pytest.raises(ClaireError, match=r"answered, but not as a Dask scheduler this client can use \(TypeError: "
                                          r"Worker.identity\(\).*give the scheduler's address \(not a worker's\)"):
        DaskExecutor(SchedulerSpec(address="tcp://127.0.0.1:1"), connect_timeout=1.0)


def test_pairs_cancelled_by_a_lost_scheduler_are_failed_not_cancelled_by_the_user():
    """QA (round 19, cluster): with the scheduler killed mid-batch Dask's client cancelled every future itself, and
    the batch recorded "cancelled by the user before this pair" and exited 0; Dask's KilledWorker came as its own
    words and a web address."""
    from types import SimpleNamespace

    cancelled = SimpleNamespace(status="cancelled")
    lost = "the Dask scheduler at tcp://x:1 went away before this pair finished"
    assert cluster._outcome(cancelled, lost)[0] == {"status": "failed", "reason": lost, "output": None,
                                                    "confidence": None}
    assert cluster._outcome(cancelled, None)[0]["reason"] == "cancelled by the user before this pair"

    class KilledWorker(Exception):  # noqa: N818 - the name Dask gives it
        pass

    died = SimpleNamespace(status="error", exception=lambda: KilledWorker("Attempted to run task ... see https://"))
    fields = cluster._outcome(died)[0]
    assert fields["status"] == "failed" and "workers' logs" in fields["reason"] and "https" not in fields["reason"]
    executor = DaskExecutor.__new__(DaskExecutor)
    executor.address, executor.client, executor._cancelling = "tcp://x:1", SimpleNamespace(status="closed"), False
    assert executor._lost().startswith("the Dask scheduler at tcp://x:1 went away before this pair finished (the "
                                       "connection to it was lost); restart the scheduler")
    executor._cancel(None, "e", [])  # no scheduler left to tell: nothing raised, and the batch's own cancel is known
    assert executor._lost() is None


def test_cli_batch_on_the_cluster_equals_a_local_run(dask_cluster, tmp_path, tiny_checkpoint):
    opt_dir, sar_dir = make_folders(str(tmp_path))
    local, remote = str(tmp_path / "local"), str(tmp_path / "remote")
    assert _cli(opt_dir, sar_dir, local, tiny_checkpoint) == 1  # the bad pair fails, the others are written
    assert _cli(opt_dir, sar_dir, remote, tiny_checkpoint, "--scheduler", dask_cluster.address) == 1
    assert sorted(rasters(remote)) == ["a_confidence.tif", "a_landcover.tif", "b_confidence.tif",
                                       "b_landcover.tif", "c_confidence.tif", "c_landcover.tif"]
    assert_same_outputs(local, remote)
    assert _csv_rows(local) == _csv_rows(remote)


def _csv_rows(folder):
    """The summary CSV's rows without the timing column, the output folder replaced by OUT."""
    import csv

    with open(os.path.join(folder, "claire_batch_summary.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{k: v.replace(folder, "OUT") for k, v in row.items() if k != "seconds"} for row in rows]


def test_workers_without_the_plugin_are_named(dask_cluster, tmp_path):
    with dask_cluster.client() as client:
        found = client.run(cluster._remote_probe(), "claire_not_installed", [str(tmp_path / "nowhere")])
    lines = compare(probe("claire", []), found, [])
    assert len(found) >= 1 and len(lines) == len(found)
    assert all("cannot import claire_not_installed" in line and "restart the workers" in line for line in lines)


def _kill_when_writing(dask_cluster, out_dir: str, name: str, index: int, killed: list,
                       timeout: float = 60.0) -> None:
    """Once `name`'s hidden temporary appears, SIGKILL the worker process running pair `index`; record its pid."""
    deadline = time.monotonic() + timeout
    with dask_cluster.client() as client:
        while time.monotonic() < deadline:
            if os.path.isdir(out_dir) and any(n.startswith(f".{name}") for n in os.listdir(out_dir)):
                for address, keys in client.processing().items():
                    if any(str(k).startswith(f"claire-pair-{index}-") for k in keys):
                        pid = client.run(os.getpid, workers=[address])[address]
                        dask_cluster.kill_worker(pid)
                        killed.append(pid)
                        return
            time.sleep(0.05)


@pytest.mark.slow
def test_a_worker_killed_mid_pair_is_replaced_and_the_outputs_equal_a_clean_run(dask_cluster, tmp_path,
                                                                                   tiny_checkpoint):
    opt_dir, sar_dir = make_folders(str(tmp_path), names=("a", "big"), bad=False, big="big")
    options = run_options(checkpoint=tiny_checkpoint, tile_size=32, context=16, threads=1)
    local, remote = str(tmp_path / "local"), str(tmp_path / "remote")
    classify_pairs(pair_folders(opt_dir, sar_dir, ""), options, local, confidence=True)
    killed: list = []
    watcher = threading.Thread(target=_kill_when_writing, args=(dask_cluster, remote, "big_", 1, killed))
    watcher.start()
    try:
        with dask_cluster.pairs_slowed(["big"]), cluster.executor_for(dask_cluster.address) as executor:
            summary = classify_pairs(pair_folders(opt_dir, sar_dir, ""), options, remote, confidence=True,
                                     executor=executor)
    finally:
        watcher.join(timeout=70)
        dask_cluster.start_worker()  # back to two workers for the tests that follow
    assert killed, "no worker was killed: the big pair finished before its temporary was seen"
    assert [r["status"] for r in summary.results] == ["ok", "ok"]
    assert_same_outputs(local, remote)
    dask_cluster.wait_for_workers(2)


def test_cancelling_stops_the_cluster_batch_cleanly(dask_cluster, tmp_path, tiny_checkpoint):
    opt_dir, sar_dir = make_folders(str(tmp_path), names=("a", "b", "c", "d", "e", "f"), bad=False)
    options = run_options(checkpoint=tiny_checkpoint, tile_size=32, context=16, threads=1)
    out = str(tmp_path / "out")
    seen: list = []
    with dask_cluster.pairs_held_until_cancel(free=("a",)), \
            DaskExecutor(SchedulerSpec(address=dask_cluster.address)) as executor:
        summary = classify_pairs(pair_folders(opt_dir, sar_dir, ""), options, out, executor=executor,
                                 is_cancelled=lambda: len(seen) >= 1,
                                 on_pair=lambda i, n, record, result: seen.append(record["status"]))
    statuses = [r["status"] for r in summary.results]
    assert statuses == ["ok"] + ["cancelled"] * 5, statuses
    for r in summary.results:  # a pair recorded cancelled wrote nothing; one recorded ok is complete
        written = os.path.exists(os.path.join(out, f"{r['key']}_landcover.tif"))
        assert written == (r["status"] == "ok"), r
    assert hidden_files(out) == []


def test_a_version_mismatch_or_unshared_folder_is_found_before_any_work(dask_cluster, tmp_path, monkeypatch):
    from claire.claire_plugin.core import worker_probe

    with DaskExecutor(SchedulerSpec(address=dask_cluster.address)) as executor:
        executor.check_workers([str(tmp_path)])  # same versions, folder seen: no error
        with pytest.raises(ClaireError, match=r"Dask worker\(s\) cannot run this batch: .* does not see "):
            executor.check_workers([str(tmp_path / "not_shared")])
        real = worker_probe.probe
        monkeypatch.setattr(worker_probe, "probe", lambda top, paths, digests=(): dict(real(top, paths, digests),
                                                                                       claire="9.9.9"))
        with pytest.raises(ClaireError, match=r"has CLAIRE 0\.\d+\.\d+ .* this machine CLAIRE 9\.9\.9.*"
                                              r"restart the workers"):
            executor.check_workers([str(tmp_path)])


@pytest.mark.slow
def test_local_n_starts_and_stops_its_own_workers(tmp_path, tiny_checkpoint):
    pytest.importorskip("distributed")
    opt_dir, sar_dir = make_folders(str(tmp_path), names=("a", "b"), bad=False)
    local, remote = str(tmp_path / "local"), str(tmp_path / "remote")
    assert _cli(opt_dir, sar_dir, local, tiny_checkpoint) == 0
    assert _cli(opt_dir, sar_dir, remote, tiny_checkpoint, "--scheduler", "local:1") == 0
    assert_same_outputs(local, remote)


def test_a_tile_size_no_pair_can_use_is_refused_before_the_cluster_runs_anything(dask_cluster, tmp_path,
                                                                                  tiny_checkpoint, capsys):
    opt_dir, sar_dir = make_folders(str(tmp_path))
    out = str(tmp_path / "remote")
    assert _cli(opt_dir, sar_dir, out, tiny_checkpoint, "--scheduler", dask_cluster.address,
                "--tile-size", "50") == 2
    assert "tile size 50 is not a multiple of 32" in capsys.readouterr().err
    assert not os.path.exists(out)


@pytest.mark.slow
def test_a_local_cluster_takes_no_connection_without_its_certificate():
    """QA (round 19, security): the local cluster's scheduler listened on 127.0.0.1 without authentication; any
    local user who found its port could submit code to its workers for the length of the run."""
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("cryptography")
    with DaskExecutor(SchedulerSpec(local_workers=1)) as ex:
        assert ex.address.startswith("tls://")
        assert ex.client.submit(sum, [1, 2]).result(timeout=60) == 3
        with pytest.raises(Exception) as info:  # noqa: PT011 - Dask raises TypeError (no TLS context) here
            distributed.Client(ex.address, timeout=5, set_as_default=False)
        assert "TLS" in str(info.value) or isinstance(info.value, (OSError, TimeoutError))


def test_local_workers_leave_ctrl_c_to_this_process():
    """A terminal's Ctrl+C reaches the whole process group: local:N workers printed their own KeyboardInterrupt
    tracebacks before claire's message. They ignore it now; this process stops them (and keeps its handler)."""
    pytest.importorskip("distributed")
    import signal

    before = signal.getsignal(signal.SIGINT)
    with DaskExecutor(SchedulerSpec(local_workers=1)) as ex:
        assert signal.getsignal(signal.SIGINT) is before
        found = ex.client.run(lambda: str(signal.getsignal(signal.SIGINT)))
    assert list(found.values()) == [str(signal.SIG_IGN)]


@pytest.mark.slow
def test_local_workers_say_nothing_when_another_dask_holds_the_http_port():
    """Beside another Dask (a notebook's, a second run), local:N printed Dask's 'Port 8787 is already in use' warning."""
    pytest.importorskip("distributed")
    import socket
    import warnings

    holder = socket.socket()
    try:
        holder.bind(("0.0.0.0", 8787))
        holder.listen()
    except OSError:
        pass  # taken already: the case itself
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            with DaskExecutor(SchedulerSpec(local_workers=1)):
                pass
        assert not [w for w in seen if "already in use" in str(w.message)]
    finally:
        holder.close()


def test_the_batch_probe_compares_the_checkpoint_the_workers_read(tmp_path):
    """Mutation check (round 19): check_workers itself sends the checkpoint to be compared (not only probe and
    compare on their own)."""
    from types import SimpleNamespace

    from claire.claire_plugin.core import worker_probe

    model = tmp_path / "m.safetensors"
    model.write_bytes(b"abc")
    executor = DaskExecutor.__new__(DaskExecutor)
    executor.address = "tcp://x:1"

    def run(fn, top, paths, same):
        info = worker_probe.probe(top, paths, same)
        info["files"] = {p: [3, "0" * 64] for p in same}
        return {"tcp://w:1": info}

    executor.client = SimpleNamespace(run=run)
    with pytest.raises(ClaireError, match="reads another file at"):
        executor.check_workers([str(tmp_path)], str(model))
