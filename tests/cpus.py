"""The CPUs a test run may use, split between xdist workers.

PyTorch, ONNX Runtime and OpenVINO each size their thread pools to the CPUs they can see. Two workers that
share two CPUs therefore run four to six busy threads on two cores, and spinning threads wait on each
other: `bash scripts/test.sh tests/test_convert.py` took 296 s on two workers, 203 s with each worker on
a CPU of its own (2 vCPUs, 2026-11-30).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

# Read at import, before any worker narrows its own set.
RUN_CPUS: frozenset[int] = frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else frozenset()


def give_each_worker_its_own_cpus() -> None:
    """Under xdist, narrow this worker to its share of the run's CPUs (worker i takes every n-th, from the
    i-th), and tell OpenMP how many that is. Must run before torch is imported. Does nothing outside
    xdist, or with more workers than CPUs."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not worker or not count or not RUN_CPUS or int(count) > len(RUN_CPUS):
        return
    mine = set(sorted(RUN_CPUS)[int(worker.removeprefix("gw"))::int(count)])
    os.sched_setaffinity(0, mine)
    os.environ["OMP_NUM_THREADS"] = str(len(mine))


@contextmanager
def all_run_cpus() -> Iterator[None]:
    """Widen this process to every CPU of the run for a test that needs two (the placement probe pins
    one process to each), then narrow it back."""
    if not RUN_CPUS:
        yield
        return
    narrowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, RUN_CPUS)
    try:
        yield
    finally:
        os.sched_setaffinity(0, narrowed)
