"""core.torch_thread: every run goes through one long-lived thread, whoever calls it."""
from __future__ import annotations

import _thread
import os
import signal
import threading
import time

import pytest

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.runtime import torch_thread


def _in_thread(fn):
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    t = threading.Thread(target=target, name="waiter")
    t.start()
    t.join(30)
    if "error" in box:
        raise box["error"]
    return box["value"]


def test_calls_from_any_thread_run_on_one_thread():
    here = torch_thread.call(threading.get_ident)
    from_worker = _in_thread(lambda: torch_thread.call(threading.get_ident))
    assert here == from_worker != threading.get_ident()
    assert torch_thread.call(lambda: threading.current_thread().name) == "claire-torch"


def test_result_exception_and_nested_calls():
    assert torch_thread.call(lambda a, b=0: a + b, 2, b=3) == 5
    with pytest.raises(ClaireError, match="boom"):
        torch_thread.call(lambda: (_ for _ in ()).throw(ClaireError("boom")))
    # a call made on the torch thread runs at once instead of waiting for itself
    assert torch_thread.call(lambda: torch_thread.call(lambda: torch_thread.on_torch_thread())) is True
    assert not torch_thread.busy()


def test_stop_ends_the_thread_after_its_jobs_and_a_later_call_starts_another():
    """Each plugin reload left a `claire-torch` thread waiting for ever (8 reloads: 9 threads, +25 MB each)."""
    def alive():
        return [t for t in threading.enumerate() if t.name == "claire-torch"]

    torch_thread.call(lambda: None)
    first = torch_thread.call(threading.current_thread)
    started = threading.Event()
    slow = _in_thread_async(lambda: torch_thread.call(lambda: (started.set(), time.sleep(0.3), "done")[2]))
    assert started.wait(10)
    torch_thread.stop()  # while a job runs: it finishes, then the thread ends
    assert slow.join_value() == "done"
    first.join(10)
    assert not first.is_alive()
    assert torch_thread.call(lambda: torch_thread.on_torch_thread()) is True  # a new thread
    assert len(alive()) == 1 and alive()[0] is not first
    assert not torch_thread.busy()


def _in_thread_async(fn):
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("value", fn()), name="waiter")
    t.start()
    t.join_value = lambda: (t.join(30), box.get("value"))[1]
    return t


def test_a_job_cancelled_while_it_waits_stops_at_once_and_never_runs():
    """Cancel pressed while a run waited behind another CLAIRE run was seen only when that run ended (13-16 s)."""
    from claire.claire_plugin.core.errors import CancelledError

    release, ran = threading.Event(), []
    first = threading.Thread(target=lambda: torch_thread.call(release.wait, 30))
    first.start()
    while not torch_thread.busy():
        time.sleep(0.01)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(CancelledError):
        torch_thread.call(lambda: ran.append(1), stop_waiting=cancel.is_set)
    waited = time.monotonic() - started
    release.set()
    first.join(30)
    assert waited < 5 and ran == [] and torch_thread.call(lambda: 7) == 7 and not torch_thread.busy()


def test_callbacks_handed_back_run_in_the_waiting_thread():
    seen = []
    report = torch_thread.in_caller(lambda x: seen.append((x, threading.current_thread().name)) or x * 2)

    def bad():
        raise ValueError("from the callback")

    def job():
        doubled = report(21)
        try:
            torch_thread.in_caller(bad)()
        except ValueError as exc:
            return doubled, str(exc)
        return doubled, "no error"

    result = _in_thread(lambda: torch_thread.call(job))
    assert result == (42, "from the callback"), "results and errors travel back to the job"
    assert seen == [(21, "waiter")]
    assert torch_thread.in_caller(None) is None
    assert report(1) == 2, "called outside a job it runs directly"


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler for the test: `_thread.interrupt_main` does nothing under another one, and a
    library loaded earlier in the test process may have installed one (a full Debian 13 run once failed so)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_in_the_waiting_thread_stops_the_job_cleanly(python_sigint):
    seen = {}

    def job():
        t0 = time.monotonic()
        while not torch_thread.interrupted():
            if time.monotonic() - t0 > 20:
                return "never interrupted"
            time.sleep(0.01)
        seen["cleaned_up"] = True
        return "stopped"

    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        torch_thread.call(job)
    timer.join()
    assert seen == {"cleaned_up": True}, "the job saw the interrupt and finished before the caller went on"
    assert not torch_thread.busy()


def test_engine_runs_the_model_on_the_torch_thread_from_a_task_thread(engine_scene, standin_model,
                                                                          standin_card):
    from claire.claire_plugin.core.engine import run
    from claire.claire_plugin.core.params import ClassifyParams

    threads, original = set(), standin_model.forward

    def forward(*a, **k):
        threads.add(threading.current_thread().name)
        return original(*a, **k)

    standin_model.forward = forward
    p = ClassifyParams(optical=engine_scene["optical"], sar=engine_scene["sar"],
                       output=os.path.join(engine_scene["dir"], "out.tif"))
    reported = set()
    res = _in_thread(lambda: run(p, standin_model, standin_card,
                                 lambda f, m: reported.add(threading.current_thread().name)))
    assert os.path.exists(res.output)
    assert threads == {"claire-torch"}
    assert reported == {"waiter"}, "progress is reported in the caller's thread, as a QgsTask expects"


def _call_in_child(queue_out) -> None:
    queue_out.put(torch_thread.call(lambda: threading.current_thread().name))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_runs_calls_of_its_own_after_the_parent_ran_one():
    """QA (library use): after one run in the parent, a child of multiprocessing's fork (Linux's default start
    method) put its job on the parent's copied queue, which nothing served: the child hung for ever."""
    import multiprocessing

    assert torch_thread.call(lambda: 1) == 1  # the parent's torch thread now exists and waits on its queue
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_call_in_child, args=(out,))
    child.start()
    child.join(60)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive and child.exitcode == 0
    assert out.get(timeout=5) == "claire-torch"
