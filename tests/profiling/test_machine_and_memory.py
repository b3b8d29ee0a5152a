"""What a measurement records about the machine (through psutil) and the process's peak memory."""

from __future__ import annotations

import os

import numpy as np

from odexport.profiling.machine import machine
from odexport.profiling.stats import PeakMemory


def test_machine_reports_cores_memory_and_load():
    found = machine()
    assert found["logical_cores"] == os.cpu_count()
    assert 1 <= found["physical_cores"] <= found["logical_cores"]
    assert found["memory_gib"] > 0.1
    assert len(found["load_average"]) == 3 and all(value >= 0 for value in found["load_average"])
    assert found["versions"]["odexport"] is not None


def test_peak_memory_sees_an_allocation_freed_before_it_is_read():
    size_mib = 200
    with PeakMemory() as memory:
        block = np.ones(size_mib * 2**20 // 8)  # touched, so resident
        del block
    # The block is gone when growth is read: only a peak (high-water mark or lifetime maximum) still sees it.
    assert memory.growth_mib() >= 0.8 * size_mib or not memory.exact
    assert memory.growth_mib() >= 0
