"""An exclusive lock on an output folder, so that two batches never write into one folder at once (QGIS-free).

Two runs of `claire classify-folder` into one folder (a cron job whose last run has not finished, a second QGIS
batch) would both classify every pair, overwrite each other's maps and leave a summary of whichever ended last.
The lock is an advisory lock on a hidden file in the folder (``fcntl.flock``; ``msvcrt.locking`` on Windows),
released by the operating system when the process ends however it ends, so a crash leaves no stale lock.
"""
from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from typing import Iterator, Optional

from ....models.quoting import quoted
from ..errors import ClaireError

#: The lock file's name inside the output folder.
LOCK_NAME = ".claire_batch.lock"


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock on `fd` without waiting; False when another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows
        try:
            import msvcrt
        except ImportError:  # neither: no locking on this platform
            return True
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a file system without locks (some network shares): run unlocked, as before
        return True
    return True


def _holder(path: str) -> str:
    """Who holds the lock, as its file says: ' (process 123 on host, since 2026-12-07 13:05)' or ''."""
    try:
        with open(path, encoding="utf-8") as fh:
            info = json.loads(fh.read(4096) or "{}")
        return (f" (process {int(info['pid'])} on {info['host']}, since "
                f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(float(info['since'])))})")
    except (OSError, ValueError, KeyError, TypeError, OverflowError):
        return ""


def _record(fd: int, what: str) -> None:
    """Write who holds the lock into the locked file (read by the refused run's message)."""
    text = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), "run": what})
    try:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, text.encode("utf-8"))
    except OSError:  # only the message of a refused run would miss it
        pass


@contextmanager
def folder_lock(folder: str, what: str = "claire classify-folder", flag: str = "--output-folder") -> Iterator[None]:
    """Hold the folder's batch lock for the block; ClaireError at once when another run holds it. The lock file is
    removed when the block ends. `flag`: the option naming the folder, for the message."""
    path = os.path.join(folder, LOCK_NAME)
    fd: Optional[int] = None
    for _ in range(20):  # the file may be removed by the run ending between our open and our lock: open again
        writable = True
        try:  # 0o666 & umask: on a folder shared by a group, the next user can open what a killed run left
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except PermissionError as denied:
            try:  # another user's lock file: a lock can be taken on a file opened for reading too
                fd, writable = os.open(path, os.O_RDONLY), False
            except OSError as exc:  # none there: the folder itself is not writable, which is the reason to give
                reason = denied if isinstance(exc, FileNotFoundError) else exc
                raise ClaireError(f"cannot open the lock file {quoted(path)} in the output folder "
                                  f"({reason.strerror or reason}); choose a folder you can write to ({flag})") from None
        except OSError as exc:
            raise ClaireError(f"cannot create the lock file {quoted(path)} in the output folder ({exc.strerror or exc})"
                              f"; choose a folder you can write to ({flag})") from None
        if not _try_lock(fd):
            os.close(fd)
            raise ClaireError(
                f"another CLAIRE batch is writing into the output folder {quoted(folder)}{_holder(path)}; wait for "
                f"it to end, or choose another folder ({flag}). A scheduled job that may overlap its last run can "
                f"be started with `flock -n` or at a longer interval.")
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except OSError:
            same = False
        if same:
            break
        os.close(fd)
        fd = None
    if fd is None:
        raise ClaireError(f"could not lock the output folder {quoted(folder)}: its lock file {LOCK_NAME} kept "
                          f"changing; check that no other program removes files there")
    if writable:
        _record(fd, what)
    try:
        yield
    finally:
        try:
            os.unlink(path)  # before closing: a run waiting on this file then sees it gone and opens a new one
        except OSError:
            pass
        os.close(fd)
