"""One long-lived thread runs every torch computation of the engine and the explainer.

Each thread that runs a parallel torch operation on the CPU keeps its own OpenMP team. libgomp, the
OpenMP runtime of torch's CPU wheels, cuts its spin-wait at barriers from 300,000 to 1,000 turns as
soon as the process has more OpenMP threads than cores; its threads then sleep and are woken at every
barrier. In QGIS a run happens in a task's thread while the main thread (or an earlier task) already
has a team, and the default model ran ~45 % slower (docs/benchmark.md). Sending every run through one
thread keeps a single team.

`call(fn, ...)` runs `fn` on that thread and waits; a call made on it runs directly. Calls from several
threads run one after another (two runs at once would only share the same cores). While it waits, the
calling thread runs the callbacks the job hands back with `in_caller` (progress reports, streamed
text), so they run where they did before: a QgsTask's progress in the task's thread, a Processing
feedback in the thread that owns it. If the waiting thread is interrupted (Ctrl+C), `interrupted()`
turns true on the worker, so the running job can stop cleanly; the waiting thread then re-raises the
KeyboardInterrupt.
"""
from __future__ import annotations

import os
import queue
import threading
from typing import Any, Callable, Optional

from .priority import lower_this_thread

_lock = threading.Lock()
_thread: Optional[threading.Thread] = None
_jobs: "queue.Queue" = queue.Queue()
_local = threading.local()
_pending = 0  # jobs queued or running


class _Job:
    def __init__(self, fn: Callable, args: tuple, kwargs: dict) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.inbox: "queue.Queue" = queue.Queue()  # callbacks for the caller, then None when done
        self.interrupt = threading.Event()
        self.state = "queued"  # -> "running" (taken by the worker) or "dropped" (its caller stopped waiting)
        self.result: Any = None
        self.error: Optional[BaseException] = None


def _worker(jobs: "queue.Queue") -> None:
    global _pending
    _local.is_torch = True
    while True:
        job = jobs.get()
        if job is None:  # stop(): the plugin is unloading
            return
        with _lock:
            if job.state == "dropped":  # cancelled while it waited behind another job: never run
                continue
            job.state = "running"
        _local.job = job
        lower_this_thread()
        try:
            job.result = job.fn(*job.args, **job.kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            job.error = exc
        finally:
            _local.job = None
            with _lock:
                _pending -= 1
            job.inbox.put(None)


def _submit(job: "_Job") -> None:
    """Queue `job` for a live torch thread (started here when there is none)."""
    global _thread, _pending
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_worker, args=(_jobs,), name="claire-torch", daemon=True)
            _thread.start()
        _pending += 1
        _jobs.put(job)


def stop() -> None:
    """Let the torch thread end once the jobs before it are done (the plugin is unloading: a reloaded plugin's
    module starts a thread of its own, and each reload left one more waiting for ever). A later `call` starts
    a new one."""
    global _thread, _jobs
    with _lock:
        thread, _thread = _thread, None
        jobs, _jobs = _jobs, queue.Queue()  # the jobs queued so far stay with that thread
        if thread is not None and thread.is_alive():
            jobs.put(None)


def _forget_after_fork() -> None:
    """In a child process started by fork: the parent's torch thread does not exist there, and its queue, lock
    and waiters are copies that nothing serves (a job put on it waited for ever). Start afresh."""
    global _lock, _thread, _jobs, _local, _pending
    _lock, _thread, _jobs, _local, _pending = threading.Lock(), None, queue.Queue(), threading.local(), 0


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_after_fork)


def on_torch_thread() -> bool:
    """Whether the calling thread is the torch thread (or one that stop() let finish its jobs)."""
    return bool(getattr(_local, "is_torch", False))


def busy() -> bool:
    """Whether a job is running or waiting on the torch thread (a new call would wait for it)."""
    return _pending > 0


def interrupted() -> bool:
    """On the torch thread: whether the caller of the running job was interrupted."""
    job = getattr(_local, "job", None)
    return bool(job is not None and job.interrupt.is_set())


def call(fn: Callable, *args, stop_waiting: Optional[Callable[[], bool]] = None, **kwargs):
    """Run `fn(*args, **kwargs)` on the torch thread and return its result (or raise its exception). While the job
    still waits behind another one, `stop_waiting()` turning true drops it (core.errors.CancelledError): a Cancel
    pressed then waited for the other run to end before it was seen."""
    if on_torch_thread():
        return fn(*args, **kwargs)
    global _pending
    job = _Job(fn, args, kwargs)
    _submit(job)
    stop: Optional[BaseException] = None
    while True:
        try:
            try:
                item = job.inbox.get(timeout=0.2)
            except queue.Empty:
                if stop_waiting is not None and job.state == "queued" and stop_waiting() and _drop(job):
                    from ..errors import CancelledError

                    raise CancelledError() from None
                continue
            if item is None:
                break
            _answer(item)
        except KeyboardInterrupt as exc:  # ask the job to stop, then wait for its clean-up
            job.interrupt.set()
            stop = exc
    if stop is not None:
        raise stop
    if job.error is not None:
        raise job.error
    return job.result


def _drop(job: _Job) -> bool:
    """Take a job that has not started off the queue's work (the worker skips it); False once it runs."""
    global _pending
    with _lock:
        if job.state != "queued":
            return False
        job.state = "dropped"
        _pending -= 1
        return True


def in_caller(fn: Optional[Callable]) -> Optional[Callable]:
    """`fn` wrapped so that, called from a job on the torch thread, it runs in the thread waiting for
    that job (and the job waits for it); called anywhere else, it runs directly. None stays None."""
    if fn is None:
        return None

    def wrapped(*args, **kwargs):
        job = getattr(_local, "job", None) if on_torch_thread() else None
        if job is None:
            return fn(*args, **kwargs)
        reply = _Reply(fn, args, kwargs)
        job.inbox.put(reply)
        reply.done.wait()
        if reply.error is not None:
            raise reply.error
        return reply.result

    return wrapped


class _Reply:
    def __init__(self, fn: Callable, args: tuple, kwargs: dict) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.done = threading.Event()
        self.result: Any = None
        self.error: Optional[BaseException] = None


def _answer(reply: _Reply) -> None:
    """Run a handed-back callback in this (the waiting) thread; a Ctrl+C during it still releases the job."""
    try:
        reply.result = reply.fn(*reply.args, **reply.kwargs)
    except KeyboardInterrupt:
        reply.done.set()
        raise
    except BaseException as exc:  # noqa: BLE001 - raised again on the torch thread, in the job
        reply.error = exc
    reply.done.set()
