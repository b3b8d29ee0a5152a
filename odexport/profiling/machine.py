"""Where a measurement ran: CPU, cores, load, and the runtime versions; stamped on every result."""

from __future__ import annotations

import platform
from pathlib import Path

import psutil

from ..lowering.tuning import cpu_model
from ..manifest import versions


def cpu_flags() -> list[str]:
    """The CPU's instruction-set extensions that change which kernels the runtimes pick (AMX, bf16).
    Read from the kernel's cpuinfo: psutil does not report them."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return sorted(flag for flag in flags if flag.startswith(("amx", "avx512_bf16", "avx512f", "avx2", "avx512_vnni")))


def machine() -> dict:
    """Load averages are over 1, 5 and 15 minutes: on a shared machine they say how busy it was."""
    return {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average": [round(value, 2) for value in psutil.getloadavg()],
        "platform": platform.platform(),
        "versions": versions(),
    }
