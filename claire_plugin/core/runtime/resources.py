"""What the machine has left for a run: available memory (system, cgroup limit, or GPU).

Available memory is the system's (Linux MemAvailable, Windows GlobalMemoryStatusEx) and, inside a cgroup
(containers, Slurm jobs), the group's limit minus its usage; on a GPU, the device's free memory.
"""
from __future__ import annotations

import os
import sys
from typing import Optional, Tuple


def cpu_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def available_bytes(device) -> Tuple[Optional[int], str]:
    """(bytes this run may still take, where that figure comes from), or (None, why unknown)."""
    if device.type == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        # blocks torch keeps cached for this process (an earlier run in QGIS) count as used to the driver
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + max(cached, 0)), f"free on {device}"
    if device.type != "cpu":
        return None, f"{device} memory cannot be read"
    found = [(n, why) for n, why in ((_system_available(), "available in the system"),
                                      (_cgroup_available(), "left under this process group's memory limit (cgroup)"),
                                      (_address_space_left(), "left under this process's address-space limit "
                                                              "(ulimit -v)")) if n is not None]
    if found:
        return min(found, key=lambda f: f[0])
    return None, "system memory cannot be read here"


def _address_space_left() -> Optional[int]:
    """The address-space limit (RLIMIT_AS, `ulimit -v`) minus what this process has mapped, None without one."""
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY or soft <= 0:
            return None
        with open("/proc/self/status", encoding="utf-8") as f:
            size = next((int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:")), None)
    except (ImportError, OSError, ValueError):
        return None
    return None if size is None else max(0, soft - size)


def _system_available() -> Optional[int]:
    """Available system memory (Linux MemAvailable, Windows GlobalMemoryStatusEx, macOS vm_stat), None where
    unknown."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    if os.name == "nt":
        import ctypes

        class _Status(ctypes.Structure):
            _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
                        ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
                        ("ullTotalPageFile", ctypes.c_ulonglong), ("ullAvailPageFile", ctypes.c_ulonglong),
                        ("ullTotalVirtual", ctypes.c_ulonglong), ("ullAvailVirtual", ctypes.c_ulonglong),
                        ("ullAvailExtendedVirtual", ctypes.c_ulonglong)]

        st = _Status()
        st.dwLength = ctypes.sizeof(_Status)
        if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(st)):
            return int(st.ullAvailPhys)
    if sys.platform == "darwin":
        return _macos_available()
    return None


def _macos_available(vm_stat: Optional[str] = None) -> Optional[int]:
    """macOS's memory a run can take without paging: free, inactive, speculative and purgeable pages of `vm_stat`
    (its output, or run here), as Activity Monitor counts what is available; None when it cannot be read."""
    import re
    import subprocess

    try:
        text = vm_stat if vm_stat is not None else subprocess.run(["vm_stat"], capture_output=True, text=True,
                                                                   timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    page = re.search(r"page size of (\d+) bytes", text)
    counts = dict(re.findall(r"^Pages (free|inactive|speculative|purgeable):\s+(\d+)\.", text, re.M))
    if not page or "free" not in counts:
        return None
    return int(page.group(1)) * sum(int(n) for n in counts.values())


def _cgroup_available(root: str = "/sys/fs/cgroup", proc: str = "/proc/self/cgroup") -> Optional[int]:
    """Limit minus usage of this process's memory cgroup (v2, else v1), or None without a limit."""
    try:
        with open(proc, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _hid, controllers, path = parts
        if controllers == "":  # v2
            base = os.path.join(root, path.lstrip("/"))
            files = (os.path.join(base, "memory.max"), os.path.join(base, "memory.current"))
        elif "memory" in controllers.split(","):  # v1
            base = os.path.join(root, "memory", path.lstrip("/"))
            files = (os.path.join(base, "memory.limit_in_bytes"), os.path.join(base, "memory.usage_in_bytes"))
        else:
            continue
        try:
            with open(files[0], encoding="utf-8") as f:
                limit = f.read().strip()
            with open(files[1], encoding="utf-8") as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or not limit.isdigit() or int(limit) >= 1 << 60:
            continue
        return max(0, int(limit) - usage)
    return None
