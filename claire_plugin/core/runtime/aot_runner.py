"""An AOTInductor package run through its C interface, so that Python's GIL is let go during the forward.

torch's loader (`torch._inductor.aoti_load_package`) holds the GIL for the whole forward of a package, so
two threads of one process cannot run two windows at once (measured: two threads took as long as one after
the other). The package's shared library exports the C interface of torch/csrc/inductor/aoti_runtime/
interface.h; a `ctypes` call of it lets the GIL go, and its container holds several model instances that may
run at the same time. The engine's forward lanes (core.engine.schedule.forward_lanes) need that.

`ReleasedAot(path, models)` runs the same library as the loader: tests compare both outputs bit for bit.
Anything this module cannot do raises `AotRunnerError`; the caller then keeps torch's loader.
"""
from __future__ import annotations

import ctypes
import glob
import os
import threading
import zipfile
from typing import Any, List, Optional

import torch

_lock = threading.Lock()


class AotRunnerError(RuntimeError):
    """The package's library cannot be run through its C interface here."""


def _capsule_api():
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    new = ctypes.pythonapi.PyCapsule_New
    new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    return get, new


def extract_library(package: str) -> str:
    """The path of the package's model library, extracted beside the package (atomically), named after the
    package's size and modification time: a package rebuilt under the same name gets a new file (a process
    keeps the library it loaded under a name), and the copies of earlier builds are removed."""
    try:
        st = os.stat(package)
        with zipfile.ZipFile(package) as z:
            names = [n for n in z.namelist() if n.endswith(".so") and "/aotinductor/model/" in f"/{n}"]
            if len(names) != 1:
                raise AotRunnerError(f"the package {package} holds {len(names)} model libraries, not one")
            stem = os.path.splitext(package)[0]
            target = f"{stem}.{st.st_mtime_ns:x}-{st.st_size:x}.so"
            with _lock:
                if not os.path.exists(target):
                    tmp = f"{target}.{os.getpid()}.tmp"
                    with z.open(names[0]) as src, open(tmp, "wb") as dst:
                        while True:
                            block = src.read(1 << 22)
                            if not block:
                                break
                            dst.write(block)
                    os.replace(tmp, target)
                    for old in glob.glob(f"{glob.escape(stem)}.*-*.so"):
                        if old != target:
                            os.remove(old)
            return target
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise AotRunnerError(f"cannot extract the model library of {package}: {exc}") from None


class ReleasedAot:
    """Callable like the loader's model (flat tensors in, the exported output structure out) that lets the
    GIL go during the forward; `models` instances may run at once (one per thread calling it)."""

    releases_gil = True

    def __init__(self, package: str, models: int = 2) -> None:
        self.library = extract_library(package)
        try:
            self._lib = ctypes.CDLL(self.library)
            for fn in ("AOTInductorModelContainerCreateWithDevice", "AOTInductorModelContainerRun",
                       "AOTInductorModelContainerDelete", "AOTInductorModelContainerGetNumOutputs",
                       "AOTInductorModelContainerGetNumInputs", "AOTInductorModelContainerGetCallSpec"):
                getattr(self._lib, fn).restype = ctypes.c_int32
        except (OSError, AttributeError) as exc:
            raise AotRunnerError(f"cannot load {self.library} through its C interface: {exc}") from None
        self._get, self._new = _capsule_api()
        self._handle = ctypes.c_void_p()
        self._check(self._lib.AOTInductorModelContainerCreateWithDevice(
            ctypes.byref(self._handle), ctypes.c_size_t(max(1, int(models))), b"cpu", None), "create")
        n_in, n_out = ctypes.c_size_t(), ctypes.c_size_t()
        self._check(self._lib.AOTInductorModelContainerGetNumInputs(self._handle, ctypes.byref(n_in)), "inputs")
        self._check(self._lib.AOTInductorModelContainerGetNumOutputs(self._handle, ctypes.byref(n_out)), "outputs")
        self.n_inputs, self.n_outputs = n_in.value, n_out.value
        in_spec, out_spec = ctypes.c_char_p(), ctypes.c_char_p()
        self._check(self._lib.AOTInductorModelContainerGetCallSpec(self._handle, ctypes.byref(in_spec),
                                                                   ctypes.byref(out_spec)), "call spec")
        from torch.utils import _pytree as pytree

        self._out_spec = pytree.treespec_loads(out_spec.value.decode()) if out_spec.value else None

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            msg = ctypes.c_char_p()
            try:
                self._lib.AOTInductorGetLastError(ctypes.byref(msg))
            except AttributeError:
                pass
            text = (msg.value or b"").decode(errors="replace")
            raise AotRunnerError(f"the AOT model library failed ({what}, code {rc}){': ' + text if text else ''}")

    def __call__(self, *tensors: torch.Tensor) -> Any:
        if len(tensors) != self.n_inputs:
            raise AotRunnerError(f"the AOT package takes {self.n_inputs} inputs, got {len(tensors)}")
        capsules = torch._C._aoti.unsafe_alloc_void_ptrs_from_tensors([t.contiguous() for t in tensors])
        inputs = (ctypes.c_void_p * len(capsules))(*[self._get(c, None) for c in capsules])
        outputs = (ctypes.c_void_p * self.n_outputs)()
        self._check(self._lib.AOTInductorModelContainerRun(  # ctypes lets the GIL go for the call
            self._handle, inputs, ctypes.c_size_t(len(capsules)), outputs, ctypes.c_size_t(self.n_outputs),
            None, None), "run")
        flat: List[torch.Tensor] = torch._C._aoti.alloc_tensors_by_stealing_from_void_ptrs(
            [self._new(outputs[i], None, None) for i in range(self.n_outputs)])
        if self._out_spec is None:
            return flat
        from torch.utils import _pytree as pytree

        return pytree.tree_unflatten(flat, self._out_spec)

    def close(self) -> None:
        """Free the container (its model instances); the library stays mapped for the process."""
        handle, self._handle = self._handle, None
        if handle is not None and handle.value:
            self._lib.AOTInductorModelContainerDelete(handle)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - at interpreter exit ctypes may be gone
            pass


def load_released(package: str, models: int = 2) -> Optional[ReleasedAot]:
    """A ReleasedAot of `package`, or None where the C interface cannot be used (the loader then runs it)."""
    try:
        return ReleasedAot(package, models)
    except AotRunnerError:
        return None
