"""Latency statistics of repeated runs, and the process's peak memory around a piece of work."""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds per call over ``count`` timed calls (after warm-up)."""

    count: int
    median_ms: float
    mean_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float

    @classmethod
    def from_seconds(cls, seconds: list[float]) -> "LatencyStats":
        """seconds: [N] wall-clock durations of single calls, N >= 1."""
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        # "lower" keeps every statistic one of the measured values, so min <= median <= p99 <= max holds.
        p50, p90, p99 = (float(np.percentile(ms, q, method="lower")) for q in (50, 90, 99))
        return cls(len(ms), p50, float(ms.mean()), p90, p99, float(ms.min()), float(ms.max()))


# psutil reads the resident set everywhere but has no high-water mark that can be reset, which is what
# keeps one measurement's peak apart from the ones before it; on Linux the kernel offers both here.
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _high_water_kib() -> int | None:
    """VmHWM: the peak resident set since the last reset, on Linux; None elsewhere."""
    try:
        line = next(line for line in _STATUS.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1])
    except (OSError, StopIteration):
        return None


def _resident_kib() -> int:
    return psutil.Process().memory_info().rss // 1024


class PeakMemory:
    """How far the resident set grew above where it stood at the start, in MiB.

    On Linux the kernel's high-water mark (VmHWM) is reset at the start (``clear_refs`` 5), so the peak
    belongs to this piece of work alone. Elsewhere the lifetime maximum (getrusage) is used, which only
    shows growth beyond every earlier peak of the process: ``exact`` says which one was measured.
    """

    def __enter__(self) -> "PeakMemory":
        self.exact = False
        if _high_water_kib() is not None:
            try:
                _CLEAR_REFS.write_text("5")
                self.exact = True
            except OSError:
                pass
        self.baseline_kib = _resident_kib() if self.exact else self._lifetime_kib()
        return self

    @staticmethod
    def _lifetime_kib() -> int:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux

    def growth_mib(self) -> float:
        peak = _high_water_kib() if self.exact else self._lifetime_kib()
        return max(0.0, ((peak or 0) - self.baseline_kib) / 1024)

    def __exit__(self, *exc_info) -> None:
        pass
