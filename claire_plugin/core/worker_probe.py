"""What a cluster worker can run: the plugin's version, torch's, and whether it sees the batch's files.

`PROBE_SOURCE` is sent to each worker as source (by value), so that a worker without the plugin can still
answer "cannot import claire" instead of failing to unpickle the probe. `compare` turns the answers into
one line per worker that cannot run the batch, each naming the fix.
"""
from __future__ import annotations

from typing import Any, Dict, List

PROBE_SOURCE = '''
def probe(top, paths, digests=()):
    import hashlib
    import importlib
    import os
    import sys
    out = {"python": sys.version.split()[0], "executable": sys.executable, "files": {}, "unreadable": {}}
    for path in digests:
        try:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    h.update(block)
            out["files"][path] = [os.path.getsize(path), h.hexdigest()]
        except OSError as exc:
            if os.path.exists(path):
                out["unreadable"][path] = exc.strerror or str(exc)
    try:
        out["claire"] = importlib.import_module(top + ".models").__version__
        importlib.import_module(top + ".claire_plugin.core.batch")
    except Exception as exc:
        out["error"] = "cannot import %s: %s: %s" % (top, type(exc).__name__, exc)
    for name in ("torch", "rasterio"):
        try:
            out[name] = importlib.import_module(name).__version__
        except Exception as exc:
            out.setdefault("error", "cannot import %s: %s" % (name, exc))
    out["missing_paths"] = [p for p in paths if not os.path.exists(p)]
    return out
'''

_namespace: Dict[str, Any] = {"__name__": "claire_worker_probe"}
exec(compile(PROBE_SOURCE, "claire_worker_probe", "exec"), _namespace)  # noqa: S102
probe = _namespace["probe"]


def compare(here: Dict[str, Any], found: Dict[str, Dict[str, Any]], paths: List[str]) -> List[str]:
    """One problem line per worker whose probe differs from this process's in what matters."""
    fix = (f"install CLAIRE {here.get('claire')} (the plugin folder importable as `claire`, e.g. on PYTHONPATH) "
           f"and torch {here.get('torch')} in the workers' Python (`pip install -r requirements.txt`), then "
           f"restart the workers")
    problems = []
    for address, info in sorted(found.items()):
        if info.get("error"):
            problems.append(f"{address} ({info.get('executable')}): {info['error']}; {fix}")
        elif info.get("claire") != here.get("claire") or info.get("torch") != here.get("torch"):
            problems.append(f"{address} has CLAIRE {info.get('claire')} with torch {info.get('torch')}, this "
                            f"machine CLAIRE {here.get('claire')} with torch {here.get('torch')}; {fix}")
        elif info.get("missing_paths"):
            problems.append(f"{address} does not see {', '.join(info['missing_paths'])}; inputs, the checkpoint and "
                            f"the output folder must be on storage shared by this machine and the workers, under "
                            f"the same path")
        elif info.get("unreadable"):
            problems.append(f"{address} cannot read " + ", ".join(f"{p} ({why})" for p, why in
                                                                    sorted(info["unreadable"].items()))
                            + "; let the user the workers run as read it (its permissions, or a umask that made it "
                              "private to you)")
        else:
            other = [p for p, ident in (here.get("files") or {}).items()
                     if (info.get("files") or {}).get(p) not in (None, ident)]
            if other:
                problems.append(f"{address} reads another file at {', '.join(other)} (its size or SHA-256 differs "
                                f"from this machine's): every worker must use the same checkpoint; put it on storage "
                                f"shared by this machine and the workers, under the same path")
    return problems
