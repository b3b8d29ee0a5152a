"""The CPU placement probe: a real round trip between two pinned CPUs, and what a comparison makes of it."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from placement import Placement, PlacementLog, core_handoff_ns, probe_cpus, split_ns

two_cpus = pytest.mark.usefixtures("two_run_cpus")


def shared_segments() -> set[str]:
    root = Path("/dev/shm")
    return {p.name for p in root.iterdir()} if root.is_dir() else set()


@two_cpus
def test_probe_times_a_round_trip_and_leaves_nothing_behind():
    affinity, segments = os.sched_getaffinity(0), shared_segments()
    ns = core_handoff_ns(round_trips=2_000, bursts=2)
    # A cache line cannot cross between cores in under 10 ns, and a Python loop answers within microseconds.
    assert ns is not None and math.isfinite(ns) and 10 < ns < 100_000
    assert os.sched_getaffinity(0) == affinity
    assert shared_segments() == segments


@two_cpus
def test_one_cpu_has_no_placement():
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(affinity)})
    try:
        assert probe_cpus() is None
        assert core_handoff_ns(round_trips=100) is None
    finally:
        os.sched_setaffinity(0, affinity)


@two_cpus
def test_around_probes_both_sides_of_the_measurement():
    result, placement = Placement.around(lambda: "measured")
    assert result == "measured"
    assert placement.before_ns > 0 and placement.after_ns > 0
    assert placement.worst_ns == max(placement.before_ns, placement.after_ns)


def test_two_levels_are_split_between_them_and_one_level_is_not_split():
    assert split_ns([400.0, 410.0, 395.0]) is None  # one level: no telling which
    boundary = split_ns([400.0, 410.0, 780.0, 270.0])  # a low outlier still leaves 400 on the together side
    assert 410.0 < boundary < 780.0
    assert split_ns([None, 400.0]) is None and split_ns([]) is None
    # Read from a run: one reading at half the together level must not become a level of its own.
    boundary = split_ns([193.0] + [395.0, 402.0] * 20 + [748.0, 782.0] * 15)
    assert 402.0 < boundary < 748.0


def test_a_placement_is_apart_when_either_end_reads_above_the_boundary():
    assert Placement(410.0, 395.0).apart(560.0) is False
    assert Placement(410.0, 770.0).apart(560.0) is True  # moved during the measurement
    assert Placement(410.0, 395.0).apart(None) is None
    assert Placement(None, None).apart(560.0) is None
    assert Placement(None, None).describe() == "not probed"
    assert Placement(412.4, 398.0).describe() == "412/398 ns"


def test_the_log_judges_each_placement_against_every_level_seen():
    log = PlacementLog()
    first = Placement(780.0, 770.0)
    log.add(first)
    assert not log.apart(first)  # nothing to compare with yet
    log.add(Placement(400.0, 405.0))
    assert log.apart(first) and not log.apart(Placement(405.0, 410.0))
