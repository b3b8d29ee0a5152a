"""The same comparison with the two vCPUs together and apart: ratios to the static twin, split by placement.

    .venv/bin/python benchmarks/placement.py                              # od_resnet18 1x, OpenVINO f32, 5 min
    .venv/bin/python benchmarks/placement.py --runtime onnxruntime --minutes 3 --lowerings auto

On a virtual machine the hypervisor moves the vCPUs between cores that share a cache and cores that do not
(odexport/profiling/placement.py). This script keeps one set of compiled models alive and times them in
short interleaved windows for a few minutes, probing the placement before and after each window; a window
whose two probes disagree is dropped. It then reports the median ratio per placement. Writes
benchmarks/results/placement-<runtime>.{json,md}. Nothing here runs when the machine cannot pin two CPUs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from odexport.conversion import convert_model
from odexport.profiling.machine import machine
from odexport.profiling.placement import Placement, split_ns
from odexport.backends.onnxruntime import OnnxRuntimeRunner
from odexport.backends.openvino import OpenVINORunner
from sweep import RESULTS, build

RUNNERS = {"openvino": lambda path, threads: OpenVINORunner(path, threads=threads, precision="f32"),
           "onnxruntime": lambda path, threads: OnnxRuntimeRunner(path, threads=threads)}
# Each model runs for a quarter second per turn and its first call of a turn is not kept: ONNX Runtime's
# idle threads spin after a call and slow whatever runs next on the two cores (alternating every 4 calls,
# od_resnet18 1x `auto` read 1.9x its twin instead of the sweep's 1.3x).
TURN_SECONDS = 0.25
TURNS_PER_WINDOW = 4


def write_models(arch: str, kernel_num: int, lowerings: list[str], runtime: str, work: Path) -> dict[str, Path]:
    """{"static twin" or lowering: its model file for ``runtime``} at batch 1, 224x224."""
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
