"""The suite's own CPU split (tests/cpus.py): without it two workers' thread pools fight over two cores
and the suite takes half as long again."""

from __future__ import annotations

import os

import pytest
import torch

from cpus import RUN_CPUS, all_run_cpus

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this system")


def test_a_worker_runs_on_its_own_share_of_the_cpus():
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not worker or int(count) > len(RUN_CPUS):
        assert os.sched_getaffinity(0) == RUN_CPUS
        return
    share = set(sorted(RUN_CPUS)[int(worker.removeprefix("gw"))::int(count)])
    assert os.sched_getaffinity(0) == share
    assert torch.get_num_threads() == len(share)


def test_a_test_may_take_every_cpu_of_the_run_and_gives_them_back():
    narrowed = os.sched_getaffinity(0)
    with all_run_cpus():
        assert os.sched_getaffinity(0) == RUN_CPUS
    assert os.sched_getaffinity(0) == narrowed
