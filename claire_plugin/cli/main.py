"""`claire` command line: one dispatcher; each subcommand module registers its own parser.

Every module listed in `_COMMANDS` exposes `register(subparsers)`, which adds its subparser(s) and sets
`func=callable(args) -> int` on each.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
from typing import Dict, List, Optional

from ..core.io.atomic import committed, forget_commits
from . import (
    bench,
    bench_robustness,
    bench_train,
    classify,
    classify_folder,
    diagnostics,
    evaluate,
    explain,
    fusion_table,
    grow_polygons,
    info,
    map_accuracy,
    suggest,
    train,
)

# Subcommand modules in the order their commands appear in `claire --help`.
_COMMANDS = [classify, classify_folder, train, grow_polygons, suggest, evaluate, map_accuracy, fusion_table, info,
             bench, bench_robustness, bench_train, explain, diagnostics]


#: Commands that read georeferenced rasters: a missing PROJ database is reported first (core.runtime.environment).
_READ_RASTERS = {"classify", "classify-folder", "train", "evaluate", "map-accuracy", "sample-points", "suggest",
                 "grow-polygons"}


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available area's subcommands."""
    parser = argparse.ArgumentParser(
        prog="claire",
        description="CLAIRE: optical + SAR land-cover classification (QGIS-free command line).",
        epilog=EXIT_STATUSES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _COMMANDS:
        module.register(sub)
    return parser


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Ctrl+C would raise KeyboardInterrupt so that a run cleans up the same way."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, frame) -> None:
    raise Stopped(signum)


def _catch_stop_signals() -> Dict[int, object]:
    """Turn SIGTERM and SIGHUP into `Stopped` (main thread only); the handlers they replace."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for name in ("SIGTERM", "SIGHUP", "SIGBREAK"):  # SIGBREAK: Ctrl+Break or a closed console on Windows
        sig = getattr(signal, name, None)
        if sig is not None:
            previous[sig] = signal.signal(sig, _stop)
    return previous


_NEGATIVE_LIST = re.compile(r"^-\d*\.?\d+(?:[eE][-+]?\d+)?(?:,[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)+$")


def join_negative_lists(argv: List[str]) -> List[str]:
    """`--extent -48.1,-25.4,-48.0,-25.3` as `--extent=-48.1,...`: argparse takes a value that starts with '-' and
    is not a single number for an option and refuses it ("expected one argument"), which every extent west of
    Greenwich or south of the equator in degrees hits."""
    out: List[str] = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and _NEGATIVE_LIST.match(token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def _quiet_stdout() -> None:
    """Point standard output at /dev/null, so that flushing it at exit cannot raise once more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _open_standard_streams() -> None:
    """A standard stream the caller closed (`2>&-`, a daemon without descriptors) is opened on /dev/null: Python
    leaves `sys.stderr` None then, and `print(..., file=None)` writes to stdout, so warnings landed inside a
    `--json` document on stdout; and the first file the run opened took descriptor 2, so GDAL's messages landed
    in it."""
    for fd, name, mode in ((0, "stdin", os.O_RDONLY), (1, "stdout", os.O_WRONLY), (2, "stderr", os.O_WRONLY)):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        try:
            null = os.open(os.devnull, mode)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
        except OSError:  # no /dev/null: nothing better to do
            continue
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", encoding="utf-8", errors="backslashreplace",
                                    closefd=False))


def _printable_stdout() -> None:
    """Output the console's code page cannot encode printed as escapes (`\\u68ee`), not a UnicodeEncodeError: on
    Windows a redirected stdout is cp1252, and a class or file named `Forêt 森林` stopped a folder run before its
    summary was written."""
    stream = sys.stdout
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "").replace("_", "")
    if encoding not in ("utf8", "utf8sig") and hasattr(stream, "reconfigure"):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (ValueError, OSError):  # a stream that cannot change now: left as it is
            pass


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; user errors print one clear line and exit with status 2. Ctrl+C, SIGTERM and
    SIGHUP stop a run and remove its temporary files; the exit status is then 128 + the signal's number
    (130, 143, 129). A defect (an exception no message was written for) prints its traceback and exits with 3, so
    that a script does not read it as a batch's failed pair (1)."""
    try:
        return _main(argv)
    except Exception:  # noqa: BLE001 - a defect: its traceback, then the status scripts can tell apart
        import traceback

        traceback.print_exc()
        print("claire: internal error (a defect of CLAIRE, not of your data): please report it with the traceback "
              "above and `claire diagnostics`", file=sys.stderr)
        return 3


def _main(argv: Optional[List[str]] = None) -> int:
    from ..core.errors import USER_ERRORS
    from ..core.runtime.environment import state_gdal_error_mode
    from ..core.runtime.memory import cap_arenas

    cap_arenas()  # before any thread of the run allocates
    _open_standard_streams()
    _printable_stdout()
    parser = build_parser()
    state_gdal_error_mode()
    args = parser.parse_args(join_negative_lists(sys.argv[1:] if argv is None else list(argv)))
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        print("claire: error: no command given; choose one of the commands above", file=sys.stderr)
        return 2  # a usage error, as argparse gives one
    previous = _catch_stop_signals()
    forget_commits()
    try:
        if args.command in _READ_RASTERS:
            from ..core.runtime.environment import proj_problem

            if proj_problem():
                print(f"claire: warning: {proj_problem()}", file=sys.stderr)
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        print(f"claire: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of the output went away (`| head`): stop quietly, as Unix tools do
        _quiet_stdout()
        return 128 + int(getattr(signal, "SIGPIPE", 13))  # no SIGPIPE on Windows
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        how = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
        outcome = getattr(exc, "claire_outcome", None) or _written_before()
        print(f"claire: {how}; {outcome}.", file=sys.stderr)
        return 128 + int(signum)
    except (ImportError, OSError) as exc:  # a package missing, or there but failing to load
        from ..deps import missing_package_hint

        hint = missing_package_hint(exc)
        if not hint and _stream_failure(exc):
            hint = (f"writing the command's messages failed ({exc.strerror or exc}: is the disk of the log full?); "
                    f"{_written_before()}")
        if not hint:
            raise
        try:
            print(f"claire: error: {hint}", file=sys.stderr)
        except OSError:
            pass  # stderr on the same full disk: the status says it
        return 2
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


#: What the exit status says, for scripts (claire --help, README).
EXIT_STATUSES = """exit status:
  0    done (warnings, if any, are stderr lines starting "claire: warning:")
  1    classify-folder: at least one pair failed (the others are done; the summary lists why)
  2    nothing done as asked: a usage error or a problem with the inputs, outputs or machine
       ("claire: error:" on stderr says what and how to fix it; no output is left half-written)
  3    a defect of CLAIRE: a Python traceback and "claire: internal error" on stderr; please report it
  128+N  stopped by signal N (130 Ctrl+C, 143 SIGTERM, 129 SIGHUP; 141 when the reader of stdout went away)"""


def _stream_failure(exc: BaseException) -> bool:
    """Whether `exc` is the standard output or error failing (a full disk or quota under a redirected log, an I/O
    error): files the command writes are checked and committed on their own, with their own messages."""
    import errno

    # a write to a stream names no file; opening or writing a file of the command's does
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO) \
        and exc.filename is None


def _written_before() -> str:
    """What an interrupted command leaves: the outputs it had committed (complete files) or none."""
    done = committed()
    if not done:
        return "no output was written"
    names = ", ".join(os.path.basename(p) for p in done[:6]) + (f" and {len(done) - 6} more" if len(done) > 6 else "")
    return f"the outputs written before it are complete ({names}, in {os.path.dirname(os.path.abspath(done[0]))})"


if __name__ == "__main__":
    sys.exit(main())
