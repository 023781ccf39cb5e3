"""Run the classify-folder pairs on a Dask distributed cluster (QGIS-free; dask is imported only when used).

`executor_for(scheduler)` gives the executor `core.batch.classify_pairs` runs its pairs with: the local
loop for an empty scheduler (the default), else a `DaskExecutor` connected to `tcp://HOST:PORT` or to a
`LocalCluster` of N worker processes (`local:N`). Each pair is one task that runs `core.batch.run_pair`,
the same engine call with the same parameters as the local loop, on a worker; outputs go to the paths the
user asked for, which must be on storage the client and the workers share (same path on both).

Faults: a task whose worker is lost is rescheduled by Dask on another worker, and a task that raises
anything but a user error is retried (`RETRIES`); user errors are caught inside the task and come back as
the pair's "failed" record. The engine writes hidden temporaries and renames them when complete, so a
killed worker never leaves a file the summary counts; its stale temporaries are removed when the batch
ends. Before any work the workers are probed (`client.run`) for the plugin, its version and torch's.
"""
from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import signal
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional

from ...models.quoting import quoted
from .batch import CANCELLED_BEFORE, SKIPPED, LocalExecutor, Outcome, PairJob, failed_fields, failed_record, run_pair
from .errors import ClaireError
from .params import RunOptions
from .runtime.resources import cpu_cores

CONNECT_TIMEOUT_S = 5.0  # reaching the scheduler
WORKERS_TIMEOUT_S = 30.0  # waiting for a first worker to join
RETRIES = 2  # extra attempts of a pair that raised something other than a user error
CANCEL_POLL_S = 0.5  # how often a task asks the client's cancel event
POLL_S = 0.1  # how often the client looks at the futures and the user's cancel
CANCEL_GRACE_S = 20.0  # how long a cancelled batch waits for running pairs to stop
DEFAULT_LOCAL_WORKERS = 2
DASK_PIN = "dask[distributed]==2026.8.0"


@dataclass(frozen=True)
class SchedulerSpec:
    """Where the pairs run: a scheduler address, or a LocalCluster of `local_workers` processes."""

    address: Optional[str] = None
    local_workers: int = 0

    def __str__(self) -> str:
        return self.address or f"local:{self.local_workers}"


def parse_scheduler(text: Optional[str]) -> Optional[SchedulerSpec]:
    """'' -> None (this process); 'local' or 'local:N' -> a LocalCluster; 'tcp://HOST:PORT' -> that scheduler."""
    text = (text or "").strip()
    if not text:
        return None
    local = re.fullmatch(r"local(?::(\d+))?", text, re.IGNORECASE)
    if local:
        n = int(local.group(1) or DEFAULT_LOCAL_WORKERS)
        if n < 1:
            raise ClaireError(f"--scheduler {quoted(text)} asks for {n} worker processes; give at least 1, "
                              f"e.g. local:2")
        cores = cpu_cores()
        if n > 2 * cores:
            raise ClaireError(f"--scheduler {quoted(text)} asks for {n} worker processes on this machine's {cores} CPU "
                              f"cores: each runs a model of its own, so more than two per core only split the "
                              f"memory and the cores; give at most local:{2 * cores}, best local:{cores} (more "
                              f"machines: a Dask scheduler, tcp://HOST:PORT)")
        return SchedulerSpec(local_workers=n)
    address = re.fullmatch(r"(tcp|tls)://(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+):(\d+)/?", text, re.IGNORECASE)
    if not address:
        raise ClaireError(f"--scheduler {quoted(text)} is not a Dask scheduler address; give tcp://HOST:PORT (as "
                          "printed by `dask scheduler`; an IPv6 host in brackets, tcp://[::1]:8786), local:N for N "
                          "worker processes on this machine, or leave it empty to classify in this process")
    return SchedulerSpec(address=f"{address.group(1).lower()}://{address.group(2)}:{address.group(3)}")


def shared_path(path: Optional[str]) -> Optional[str]:
    """A local path made absolute, as workers in other processes (or machines, on shared storage mounted at the
    same place) must be given it; GDAL names (/vsi..., DRIVER:...) and None unchanged."""
    from .io.gdal_names import is_gdal_name

    if not path or is_gdal_name(path):
        return path
    return os.path.abspath(path)


def _import_distributed():
    """The `distributed` module, or a ClaireError naming the package to install."""
    try:
        import distributed
    except ImportError:
        raise ClaireError(f"running on a Dask cluster needs the Python package distributed, which is not "
                          f"installed; install it with `pip install \"{DASK_PIN}\"` (or `make` in the CLAIRE "
                          f"source folder), or leave the scheduler empty to classify in this process") from None
    return distributed


def _check_spawnable() -> None:
    """ClaireError when this process cannot start Python worker processes (e.g. inside QGIS, whose executable
    is QGIS itself): local:N needs a Python interpreter to spawn."""
    import multiprocessing.spawn
    import sys

    exe = os.path.basename(os.fsdecode(multiprocessing.spawn.get_executable() or sys.executable or ""))
    if not exe.startswith("python"):
        raise ClaireError(f"local:N cannot start worker processes from this program ({exe or 'unknown'} is not a "
                          f"Python interpreter); start them by hand (`dask scheduler`, then `dask worker "
                          f"tcp://HOST:8786 --nthreads 1`) and give the scheduler's tcp://HOST:PORT instead")


@contextlib.contextmanager
def _children_ignore_sigint():
    """Processes started in the block ignore Ctrl+C (and keep ignoring it: Python installs its handler only
    where SIGINT is at its default). A terminal sends Ctrl+C to the whole process group, and each local worker
    printed its own KeyboardInterrupt traceback before claire's message; this process stops them instead."""
    if threading.current_thread() is not threading.main_thread():  # QGIS's task threads cannot set handlers
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class executor_for:  # noqa: N801 - used as a context manager, like open()
    """`with executor_for(scheduler) as ex:` -> LocalExecutor for an empty scheduler, else a connected
    DaskExecutor that is closed (and its LocalCluster stopped) on leaving the block."""

    def __init__(self, scheduler: Optional[str], log: Optional[Callable[[str], None]] = None) -> None:
        self.spec = parse_scheduler(scheduler)
        self.log = log
        self.executor: Any = None

    def __enter__(self):
        self.executor = LocalExecutor() if self.spec is None else DaskExecutor(self.spec, self.log)
        return self.executor

    def __exit__(self, *exc) -> None:
        if isinstance(self.executor, DaskExecutor):
            self.executor.close()


def local_security(log: Callable[[str], None]):
    """Mutual TLS with a certificate made for this run, for a local cluster: its scheduler listens on a port of
    this machine, where any other local user could otherwise send it code to run as this user. None (and a note)
    where the `cryptography` package that makes the certificate is missing."""
    try:
        from distributed.security import Security

        return Security.temporary()
    except ImportError:
        log("note: the local Dask cluster runs without TLS (the Python package cryptography is missing): other "
            "users of this machine could reach its port during the run")
        return None


def _connect(distributed, address: str, timeout: float, security):
    """A Client of the scheduler at `address`, or a ClaireError naming what answered there: Dask's own timeout
    does not cover its handshake, so a port that accepts but never speaks Dask (a dashboard, a web server) hung
    the batch; a worker's address or a TLS mismatch raised Dask's internals."""
    box: Dict[str, Any] = {}

    def connect() -> None:
        try:
            client = distributed.Client(address, timeout=timeout, set_as_default=False,
                                        **({"security": security} if security is not None else {}))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, named there
            box["error"] = exc
            return
        with lock:
            late = box["given_up"]
            box["client"] = client
        if late:  # the caller gave up on it: nothing else would ever close it (QGIS runs on for hours)
            client.close()

    lock = threading.Lock()
    box["given_up"] = False
    thread = threading.Thread(target=connect, name="claire-dask-connect", daemon=True)
    thread.start()
    thread.join(timeout + 5.0)
    with lock:
        box["given_up"] = "client" not in box and "error" not in box
    unreachable = ("; start it with `dask scheduler` on that machine and check the address and port (or the "
                   "firewall), or leave the scheduler empty to classify in this process")
    if box["given_up"]:
        raise ClaireError(f"{address} accepts connections but no Dask scheduler answered there within "
                          f"{timeout + 5.0:.0f} s (a dashboard or web port? `dask scheduler` prints its address, "
                          f"tcp://HOST:8786 by default, its dashboard 8787){unreachable}")
    exc = box.get("error")
    if exc is None:
        return box["client"]
    if isinstance(exc, (OSError, TimeoutError)):
        raise ClaireError(f"cannot reach the Dask scheduler at {address} ({exc}){unreachable}") from None
    raise ClaireError(f"{address} answered, but not as a Dask scheduler this client can use ({type(exc).__name__}: "
                      f"{str(exc)[:200]}): give the scheduler's address (not a worker's), with tls:// only where "
                      f"the scheduler uses TLS and Dask's TLS settings are configured here") from None


class DaskExecutor:
    """One Dask task per pair, on the workers of a scheduler; results come back as they finish."""

    def __init__(self, spec: SchedulerSpec, log: Optional[Callable[[str], None]] = None,
                 connect_timeout: Optional[float] = None, workers_timeout: Optional[float] = None) -> None:
        distributed = _import_distributed()
        connect_timeout = CONNECT_TIMEOUT_S if connect_timeout is None else connect_timeout
        workers_timeout = WORKERS_TIMEOUT_S if workers_timeout is None else workers_timeout
        self.spec, self.log = spec, log or (lambda _message: None)
        self.cluster, security = None, None
        if spec.local_workers:
            _check_spawnable()
            security = local_security(self.log)
            with _children_ignore_sigint(), warnings.catch_warnings():
                # another Dask on this machine holds the scheduler's HTTP port: Dask takes another and said so
                warnings.filterwarnings("ignore", message="Port .* is already in use")
                self.cluster = distributed.LocalCluster(n_workers=spec.local_workers, threads_per_worker=1,
                                                        processes=True, dashboard_address=None,
                                                        silence_logs=logging.ERROR, security=security)
            address = self.cluster.scheduler_address
        else:
            address = spec.address
        try:
            self.client = _connect(distributed, address, connect_timeout, security)
        except ClaireError:
            self._stop_cluster()
            raise
        self._cancelling = False  # set when this batch cancels its own pairs (a user's cancel, Ctrl+C)
        self._quiet = contextlib.ExitStack()
        try:
            self.client.wait_for_workers(1, timeout=workers_timeout)
        except (OSError, TimeoutError):
            self.close()
            raise ClaireError(f"the Dask scheduler at {address} has no worker after {workers_timeout:.0f} s; start "
                              f"workers with `dask worker {address} --nthreads 1` on machines that see the "
                              f"data") from None
        self.address = address

    @property
    def workers(self) -> int:
        """Workers connected now."""
        return max(1, len(self.client.nthreads()))

    def __enter__(self) -> "DaskExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Disconnect, and stop the LocalCluster when this executor started one."""
        client, self.client = getattr(self, "client", None), None
        if client is not None:
            client.close()
        self._stop_cluster()
        quiet = getattr(self, "_quiet", None)
        if quiet is not None:
            quiet.close()

    def _stop_cluster(self) -> None:
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None

    def check_workers(self, paths: List[str], checkpoint: Optional[str] = None) -> None:
        """ClaireError, naming the fix, when a worker cannot import this plugin, holds another CLAIRE or torch
        version, or cannot see `paths` (the output folder and an input: storage must be shared), or reads
        another file at `checkpoint`'s path (the checkpoint is compared by size and SHA-256)."""
        from .worker_probe import compare, probe

        top = __name__.split(".")[0]
        same = [checkpoint] if checkpoint and os.path.isfile(checkpoint) else []
        here = probe(top, [], same)
        try:
            found = self.client.run(_remote_probe(), top, paths + same, same)
        except Exception as exc:  # noqa: BLE001 - the scheduler or the workers went away meanwhile
            raise ClaireError(f"the Dask scheduler at {self.address} could not ask its workers ({type(exc).__name__}: "
                              f"{str(exc)[:200]}); check that it and its workers still run, then start again") from None
        problems = compare(here, found, paths + same)
        if problems:
            raise ClaireError(f"{len(problems)} of {len(found)} Dask worker(s) cannot run this batch: "
                              f"{'; '.join(problems)}")
        self.log(f"{len(found)} Dask worker(s) at {self.address} run CLAIRE {here['claire']} with torch "
                 f"{here['torch']}")

    def run(self, jobs: List[PairJob], options: RunOptions, progress, is_cancelled) -> Iterator[Outcome]:
        """Submit one task per pair not skipped; yield each outcome as it finishes. Cancelling sets the
        batch's cancel event (running pairs stop at their next check) and cancels the futures."""
        distributed = _import_distributed()
        todo = [j for j in jobs if not j.skip]
        if todo:
            self.check_workers([os.path.dirname(todo[0].output), todo[0].optical, todo[0].sar], options.checkpoint)
        for job in jobs:
            if job.skip:
                yield job, dict(SKIPPED), None
        token = uuid.uuid4().hex[:12]
        event = f"claire-cancel-{token}"
        futures = {self.client.submit(_remote_pair, job, options, event, key=f"claire-pair-{job.index}-{token}",
                                      retries=RETRIES, pure=False): job for job in todo}
        what = "band(s) of rows" if todo and all(getattr(j, "rows", None) for j in todo) else "pair(s)"
        self.log(f"{len(futures)} {what} submitted to {self.address}")
        done_count = len(jobs) - len(todo)
        self._quiet.enter_context(_quiet_client_log())  # until close(): the client's reconnecting logs too
        try:
            yield from self._collect(distributed, futures, event, done_count, len(jobs), progress, is_cancelled)
        finally:
            if any(not f.done() for f in futures):  # an interrupt (Ctrl+C) or an error in a caller's callback
                self._cancel(distributed, event, list(futures))
            remove_stale_temporaries(todo)

    def _collect(self, distributed, futures, event, done_count, n, progress, is_cancelled) -> Iterator[Outcome]:
        """Yield outcomes as futures finish; on cancel, the outcomes of `_cancel_gracefully`."""
        pending = set(futures)
        while pending:
            if is_cancelled is not None and is_cancelled():
                yield from self._cancel_gracefully(distributed, futures, pending, event)
                return
            finished = [f for f in pending if f.done()]
            if not finished:
                time.sleep(POLL_S)
                continue
            for f in sorted(finished, key=lambda f: futures[f].index):
                pending.discard(f)
                job = futures[f]
                fields, result = _outcome(f, self._lost())
                done_count += 1
                if progress is not None:
                    progress(done_count / n, f"{os.path.basename(job.optical)}: {fields['status']}")
                yield job, fields, result

    def _cancel_gracefully(self, distributed, futures, pending, event) -> Iterator[Outcome]:
        """Cancel the pairs not started; let the running ones see the cancel event and stop (within
        CANCEL_GRACE_S), so that a pair recorded "cancelled" has written nothing and one that finished
        first is recorded "ok"."""
        self._cancelling = True
        distributed.Event(event, client=self.client).set()  # a pair starting from now on writes nothing
        running = {key for keys in self.client.processing().values() for key in keys}
        finished = [f for f in pending if f.done()]  # after the snapshot: done since the last poll
        for f in sorted(finished, key=lambda f: futures[f].index):
            yield (futures[f], *_outcome(f, self._lost()))
        queued = [f for f in pending if f not in finished and f.key not in running]
        self.client.cancel(queued)
        for f in sorted(queued, key=lambda f: futures[f].index):
            yield futures[f], dict(CANCELLED_BEFORE), None
        started = [f for f in pending if f not in finished and f.key in running]
        deadline = time.monotonic() + CANCEL_GRACE_S
        while time.monotonic() < deadline and not all(f.done() for f in started):
            time.sleep(POLL_S)
        self.client.cancel([f for f in started if not f.done()])
        for f in sorted(started, key=lambda f: futures[f].index):
            if f.status in ("finished", "error"):
                yield (futures[f], *_outcome(f, self._lost()))
            else:
                yield futures[f], {"status": "cancelled", "reason": "cancelled by the user", "output": None}, None

    def _cancel(self, distributed, event: str, futures: list) -> None:
        self._cancelling = True
        try:
            distributed.Event(event, client=self.client).set()
            self.client.cancel(futures)
        except Exception:  # noqa: BLE001 - a scheduler already gone has nothing left to cancel
            pass

    def _lost(self) -> Optional[str]:
        """Why a pair this batch did not cancel came back cancelled (Dask's client cancels every future when it
        loses its scheduler), or None where this batch cancelled."""
        if self._cancelling:
            return None
        return (f"the Dask scheduler at {self.address} went away before this pair finished (the connection to it was "
                f"lost); restart the scheduler and its workers, then run the batch again with --skip-existing")


@contextlib.contextmanager
def _quiet_client_log() -> Iterator[None]:
    """Dask's client logs a traceback of its own when it loses the scheduler; the pairs' records say it instead."""
    log = logging.getLogger("distributed.client")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def _outcome(future, lost: Optional[str] = None):
    """(fields, result) of a finished future; a task that kept failing or lost its workers is "failed", and so is
    one cancelled by anything but this batch (`lost`: why, e.g. the scheduler went away)."""
    if future.status == "finished":
        return future.result()
    if future.status == "cancelled":
        if lost:
            return failed_record(lost), None
        return dict(CANCELLED_BEFORE), None
    exc = future.exception()
    if type(exc).__name__ == "KilledWorker":  # Dask's own words name its internals and a web page
        return failed_record("the Dask workers running or holding this pair died while they had it, as many times "
                             "as the scheduler allows (out of memory? killed?); see the workers' logs, give them more "
                             "memory or fewer pairs at once, then run the batch again with --skip-existing"), None
    return failed_fields(exc, None), None


def _remote_pair(job: PairJob, options: RunOptions, event_name: str):
    """On a worker: run the pair; user errors come back as "failed", anything else raises (and is retried)."""
    from distributed import Event

    event = Event(event_name)
    state = {"at": 0.0, "set": False}

    def is_cancelled() -> bool:
        now = time.monotonic()
        if not state["set"] and now - state["at"] >= CANCEL_POLL_S:
            state["at"], state["set"] = now, event.is_set()
        return state["set"]

    if is_cancelled():
        return dict(CANCELLED_BEFORE), None
    return run_pair(job, options, None, is_cancelled, catch_unexpected=False)


def _remote_probe():
    """The probe function, sent by value: a worker without the plugin must still be able to run it."""
    from . import worker_probe

    namespace: Dict[str, Any] = {"__name__": "claire_worker_probe"}
    exec(compile(worker_probe.PROBE_SOURCE, "claire_worker_probe", "exec"), namespace)  # noqa: S102
    return namespace["probe"]


def remove_stale_temporaries(jobs: List[PairJob]) -> List[str]:
    """Remove the hidden temporaries a killed worker left beside the outputs of `jobs`; their paths."""
    removed = []
    for job in jobs:
        for final in (job.output, job.confidence):
            if not final:
                continue
            folder, name = os.path.split(os.path.abspath(final))
            for path in glob.glob(os.path.join(folder, f".{glob.escape(name)}.*.partial*")):
                try:
                    os.unlink(path)
                    removed.append(path)
                except OSError:
                    pass
    return removed
