"""How close together the two CPUs that run a measurement sit: the round trip of one cache line between
them, timed before and after each group of variants is measured.

Why it is recorded: on a virtual machine the hypervisor may place the two vCPUs on cores that share a
cache or on cores that do not, and move them while a benchmark runs (on the sweep's machine, every 10 s to
a few minutes). With the vCPUs apart, every node whose two halves run on different CPUs pays for moving
data between them; memory-bound nodes (elementwise multiplies, Concat, a run-time weight) pay most, so
ODConv graphs slow down more than their mostly-convolution twins. `benchmarks/placement.py` measures both
placements in one process (benchmarks/results/placement-openvino.md: od_resnet18 1x `auto` 1.18x its twin
together, 1.37x apart, in OpenVINO f32). A ratio measured apart is a different quantity from one measured
together, and a desktop or edge CPU with a shared last-level cache behaves like "together".

The probe is pure Python (two processes pinned to two CPUs flipping one byte of shared memory), so the
interpreter adds to the round trip, by an amount that drifts with the host's load. Within one run the two
placements read as two levels about 2x apart (about 400 ns and 770 ns in placement-openvino.json); that
ratio, not a fixed number, is the signal.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from multiprocessing import shared_memory
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")

ROUND_TRIPS = 20_000
BURSTS = 3
# Apart reads about twice the together level (see above); the interpreter's share drifts with the host's
# load, so there is no absolute threshold: probes are judged against the levels seen in the same run.
APART_FACTOR = 1.5
# Seconds' worth of waiting for one answer (a Python spin takes tens of ns): the partner is gone.
MAX_SPINS = 50_000_000

# The partner process: pinned to its CPU, it answers every 1 with a 0; it imports nothing heavy, so it
# starts in tens of milliseconds. argv: shared memory name, CPU, round trips.
_PARTNER = """
import os, sys
from multiprocessing import shared_memory

def answer(buf, round_trips):  # a function: its locals are faster than module globals, as in the caller's loop
    for _ in range(round_trips):
        while buf[0] != 1:
            pass
        buf[0] = 0

os.sched_setaffinity(0, {int(sys.argv[2])})
try:
    shm = shared_memory.SharedMemory(name=sys.argv[1], track=False)
except TypeError:  # before Python 3.13 an attached segment is tracked, and unlinked when this process exits
    from multiprocessing import resource_tracker
    shm = shared_memory.SharedMemory(name=sys.argv[1])
    resource_tracker.unregister(shm._name, "shared_memory")
buf = shm.buf
buf[1] = 1
answer(buf, int(sys.argv[3]))
del buf
shm.close()
"""


@dataclass(frozen=True)
class Placement:
    """Round trips (ns) of one byte between the two CPUs just before and just after a measurement; None
    where the CPUs could not be probed."""

    before_ns: float | None
    after_ns: float | None

    @classmethod
    def around(cls, measure: Callable[[], T]) -> tuple[T, "Placement"]:
        before = core_handoff_ns()
        result = measure()
        return result, cls(before, core_handoff_ns())

    @property
    def worst_ns(self) -> float | None:
        probes = [ns for ns in (self.before_ns, self.after_ns) if ns is not None]
        return max(probes) if probes else None

    def apart(self, boundary_ns: float | None) -> bool | None:
        """Whether either probe read above ``boundary_ns`` (see split_ns); None when unprobed or when no
        boundary is known (a single level seen so far)."""
        worst = self.worst_ns
        return None if worst is None or boundary_ns is None else worst > boundary_ns

    def describe(self) -> str:
        if self.worst_ns is None:
            return "not probed"
        return "/".join("-" if ns is None else f"{ns:.0f}" for ns in (self.before_ns, self.after_ns)) + " ns"


def split_ns(probes: Iterable[float | None]) -> float | None:
    """The boundary between the together and apart levels among ``probes``, or None while only one level
    has been seen.

    The probes are split in two groups where that leaves the least spread within each (on a log scale,
    so a lone reading far below the together level joins it instead of becoming a level of its own); the
    boundary is the geometric mean of the two groups' medians, once those differ by over APART_FACTOR.
    """
    values = sorted(math.log(ns) for ns in probes if ns is not None and ns > 0)
    if len(values) < 2:
        return None

    def spread(group: list[float]) -> float:
        mean = sum(group) / len(group)
        return sum((v - mean) ** 2 for v in group)

    cut = min(range(1, len(values)), key=lambda i: spread(values[:i]) + spread(values[i:]))
    low, high = statistics.median(values[:cut]), statistics.median(values[cut:])
    if high - low <= math.log(APART_FACTOR):
        return None
    return math.exp((low + high) / 2)


@dataclass
class PlacementLog:
    """Every placement probed in one benchmark, to judge each new one against the levels seen so far."""

    placements: list[Placement] = field(default_factory=list)

    def add(self, placement: Placement) -> None:
        self.placements.append(placement)

    def boundary_ns(self) -> float | None:
        return split_ns(ns for p in self.placements for ns in (p.before_ns, p.after_ns))

    def apart(self, placement: Placement) -> bool:
        """True when ``placement`` read apart against everything logged (itself included)."""
        return bool(placement.apart(self.boundary_ns()))


def probe_cpus() -> tuple[int, int] | None:
    """The first two CPUs this process may run on (the ones a 2-thread runtime uses); None with fewer."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    return (allowed[0], allowed[1]) if len(allowed) >= 2 else None


def core_handoff_ns(round_trips: int = ROUND_TRIPS, bursts: int = BURSTS) -> float | None:
    """Median over ``bursts`` of the mean round trip (ns) of one byte between two CPUs, or None where the
    CPUs cannot be pinned (not Linux, fewer than two CPUs, pinning refused, or the partner process did
    not start)."""
    cpus = probe_cpus()
    if cpus is None:
        return None
    try:
        return _round_trip_ns(*cpus, round_trips, bursts)
    except OSError:  # no /dev/shm, or pinning refused (some containers): the measurement goes on unprobed
        return None


def _round_trip_ns(here: int, there: int, round_trips: int, bursts: int) -> float | None:
    previous = os.sched_getaffinity(0)
    shm = shared_memory.SharedMemory(create=True, size=64)
    buf = shm.buf
    partner = None
    try:
        buf[0] = buf[1] = 0
        os.sched_setaffinity(0, {here})  # this thread only: the runtimes' own threads keep their CPUs
        partner = subprocess.Popen([sys.executable, "-c", _PARTNER, shm.name, str(there), str(round_trips * bursts)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10.0
        while buf[1] != 1:
            if partner.poll() is not None or time.monotonic() > deadline:
                return None
            time.sleep(0.001)
        means = []
        limit = MAX_SPINS  # a local: a global lookup per spin would slow the loop being timed
        for _ in range(bursts):
            start = time.perf_counter()
            for _ in range(round_trips):
                buf[0] = 1
                spins = 0
                while buf[0] != 0:
                    spins += 1
                    if spins > limit:  # the partner died: do not spin forever
                        return None
            means.append((time.perf_counter() - start) / round_trips * 1e9)
        partner.wait(timeout=10.0)
        return statistics.median(means)
    finally:
        if partner is not None and partner.poll() is None:
            partner.kill()
            partner.wait()
        del buf
        shm.close()
        shm.unlink()
        os.sched_setaffinity(0, previous)

