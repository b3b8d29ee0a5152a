"""How close together the two CPUs that run a measurement sit, and a benchmark of what that does to the
ratios: the probe (a round trip of one cache line between them, timed before and after each measured
group; `odexport.profiling.compare_models(placements=PlacementLog())` takes it as its hook), then the
script, which measures both placements in one process.

    .venv/bin/python benchmarks/placement.py                              # od_resnet18 1x, OpenVINO f32, 5 min
    .venv/bin/python benchmarks/placement.py --runtime onnxruntime --minutes 3 --lowerings auto

Why it is recorded: on a virtual machine the hypervisor may place the two vCPUs on cores that share a
cache or on cores that do not, and move them while a benchmark runs (on the sweep's machine, every 10 s to
a few minutes). With the vCPUs apart, every node whose two halves run on different CPUs pays for moving
data between them; memory-bound nodes (elementwise multiplies, Concat, a run-time weight) pay most, so
ODConv graphs slow down more than their mostly-convolution twins (benchmarks/results/placement-openvino.md:
od_resnet18 1x `auto` 1.18x its twin together, 1.37x apart, in OpenVINO f32). A ratio measured apart is a
different quantity from one measured together, and a desktop or edge CPU with a shared last-level cache
behaves like "together".

The probe is pure Python (two processes pinned to two CPUs flipping one byte of shared memory), so the
interpreter adds to the round trip, by an amount that drifts with the host's load. Within one run the two
placements read as two levels about 2x apart (about 400 ns and 770 ns in placement-openvino.json); that
ratio, not a fixed number, is the signal.

The script keeps one set of compiled models alive and times them in short interleaved windows for a few
minutes, probing the placement before and after each window; a window whose two probes disagree is
dropped. It then reports the median ratio per placement. Writes benchmarks/results/placement-<runtime>.
{json,md}. Nothing here runs when the machine cannot pin two CPUs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing import shared_memory
from pathlib import Path
from typing import Callable, Iterable, TypeVar

import numpy as np

from odexport.backends.onnxruntime import OnnxRuntimeRunner
from odexport.backends.openvino import OpenVINORunner
from odexport.conversion import convert_model
from odexport.profiling.machine import machine

T = TypeVar("T")

RESULTS = Path(__file__).parent / "results"

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

    def around(self, measure: Callable[[], T]) -> tuple[T, Placement]:
        """``measure()`` between two probes, logged: the hook odexport.profiling.comparison takes."""
        result, placement = Placement.around(measure)
        self.add(placement)
        return result, placement

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


# --- the benchmark: one comparison's models timed in windows, split by placement -------------------------

RUNNERS = {"openvino": lambda path, threads: OpenVINORunner(path, threads=threads, precision="f32"),
           "onnxruntime": lambda path, threads: OnnxRuntimeRunner(path, threads=threads)}
# Each model runs for a quarter second per turn and its first call of a turn is not kept: ONNX Runtime's
# idle threads spin after a call and slow whatever runs next on the two cores (alternating every 4 calls,
# od_resnet18 1x `auto` read 1.9x its twin instead of the sweep's 1.3x).
TURN_SECONDS = 0.25
TURNS_PER_WINDOW = 4


def write_models(arch: str, kernel_num: int, lowerings: list[str], runtime: str, work: Path) -> dict[str, Path]:
    """{"static twin" or lowering: its model file for ``runtime``} at batch 1, 224x224."""
    from sweep import build  # sweep imports this module for its probe: at the top this would be circular

    model, twin, _ = build(arch, kernel_num)
    target = "openvino" if runtime == "openvino" else "onnxruntime"
    files = {"static twin": convert_model(twin, target=target, output=work / "static", imgsz=224, batch=1,
                                          verify=False).model_file}
    for lowering in lowerings:
        files[lowering] = convert_model(model, target=target, output=work / lowering, imgsz=224, batch=1,
                                        verify=False, lowering=lowering, precision="fp32").model_file
    return files


def time_window(runners: dict, feed: dict) -> dict[str, float]:
    """Median ms of each runner over one window of interleaved turns."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(TURNS_PER_WINDOW):
        for name, runner in runners.items():
            runner.infer(feed)
            turn_end = time.perf_counter() + TURN_SECONDS
            while time.perf_counter() < turn_end:
                start = time.perf_counter()
                runner.infer(feed)
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="od_resnet18")
    parser.add_argument("--kernel-num", type=int, default=1)
    parser.add_argument("--runtime", choices=sorted(RUNNERS), default="openvino")
    parser.add_argument("--lowerings", nargs="+", default=["auto", "decomposed", "dynamic-weight"])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--render", type=Path, metavar="PLACEMENT_JSON",
                        help="measure nothing: write the .md again from this placement-<runtime>.json")
    args = parser.parse_args()
    if args.render:
        render(args.render.with_suffix(""))
        return

    with tempfile.TemporaryDirectory(prefix="odexport-placement-") as work:
        files = write_models(args.arch, args.kernel_num, args.lowerings, args.runtime, Path(work))
        runners = {name: RUNNERS[args.runtime](path, args.threads) for name, path in files.items()}
        feed = {"input": np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)}
        for runner in runners.values():
            runner.infer(feed)
        windows = []
        deadline = time.monotonic() + args.minutes * 60
        while time.monotonic() < deadline:
            medians, placement = Placement.around(lambda: time_window(runners, feed))
            if placement.worst_ns is None:
                raise SystemExit("this machine cannot pin two CPUs: there is no placement to measure")
            windows.append({"before_ns": placement.before_ns, "after_ns": placement.after_ns, "ms": medians})
            print(f"{placement.describe():>16s}  " + "  ".join(f"{name} {ms:.2f}" for name, ms in medians.items()),
                  flush=True)
    context = machine() | {"threads": args.threads, "arch": args.arch, "kernel_num": args.kernel_num,
                           "runtime": args.runtime, "minutes": args.minutes, "models": list(files)}
    args.output.mkdir(parents=True, exist_ok=True)
    stem = args.output / f"placement-{args.runtime}"
    stem.with_suffix(".json").write_text(json.dumps({"context": context, "windows": windows}, indent=1))
    render(stem)


def render(stem: Path) -> None:
    """Write <stem>.md from <stem>.json: the windows split by placement."""
    data = json.loads(stem.with_suffix(".json").read_text())
    windows, context = data["windows"], data["context"]
    boundary = split_ns(ns for w in windows for ns in (w["before_ns"], w["after_ns"]))
    states: dict[str, list[dict]] = {"together": [], "apart": []}
    for window in windows:
        before_apart = boundary is not None and window["before_ns"] > boundary
        after_apart = boundary is not None and window["after_ns"] > boundary
        if before_apart == after_apart:  # a window during which the CPUs moved is dropped
            states["apart" if before_apart else "together"].append(window)
    stem.with_suffix(".md").write_text(markdown(states, context["models"], context | {"boundary_ns": boundary}))
    print(stem.with_suffix(".md").read_text())


def markdown(states: dict[str, list[dict]], names: list[str], context: dict) -> str:
    twin = names[0]
    lines = [f"# {context['arch']} {context['kernel_num']}x in {context['runtime']} f32, vCPUs together and apart", "",
             f"{context['cpu']}, {context['logical_cores']} logical cores, {context['threads']} threads, 224x224, "
             f"batch 1; {context['minutes']} minutes of interleaved windows in one process. "
             + (f"Apart: round trips over {context['boundary_ns']:.0f} ns (between the two levels seen) before and "
                f"after the window. " if context["boundary_ns"] else "Only one placement was seen: all windows count "
                                                                     "as together. ")
             + "Median over windows of each window's median ms, and its ratio to the static twin.", "",
             "| placement | windows | " + " | ".join(names) + " |",
             "|---|---:|" + "---:|" * len(names)]
    for state, windows in states.items():
        if not windows:
            lines.append(f"| {state} | 0 |" + " |" * len(names))
            continue
        cells = []
        for name in names:
            ms = statistics.median(w["ms"][name] for w in windows)
            ratio = statistics.median(w["ms"][name] / w["ms"][twin] for w in windows)
            cells.append(f"{ms:.2f} ({ratio:.2f}x)")
        lines.append(f"| {state} | {len(windows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
