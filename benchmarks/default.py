"""Which `convert` should be the default: candidate artifacts, each loaded as a user loads the file.

    .venv/bin/python benchmarks/default.py                         # od_resnet18 and od_mobilenetv2_100 1x
    .venv/bin/python benchmarks/default.py --archs od_mobilenetv2_100 --rounds 5 --variants default auto-dynamic

Each candidate is what `odexport convert` writes for a target (`openvino`: the IR compiled with
`core.compile_model(path, "CPU", {INFERENCE_PRECISION_HINT: <the manifest's precision>})` and the file's
shapes as written, dynamic batch included; `onnxruntime`: `InferenceSession(path)`), both at 2 threads.
Beside them: the static twin (the zoo architecture with plain convolutions, converted at batch 1) and the
naive `torch.onnx.export` of the ODConv model at batch 1. The machine is shared, so nothing here is an
absolute time: in every round each file runs for ``--round-seconds`` in turn (the order rotating), the
ratio of its median to the twin's median in that round is kept, and the table shows the median of those
per-round ratios, with the load average and where the two CPUs sat (a one-byte round trip between them,
benchmarks/placement.py) before and after each group; a group whose CPUs read apart is measured again, up to
``--attempts`` times in all. A dynamic-batch file is also run at batch 8:
its per-image time over its own batch-1 time, in the same rounds.

Results: benchmarks/results/default.{json,md}, with the command that made them.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from odexport.conversion import convert_model
from odexport.models import create_model, get_arch, randomize_
from odexport.profiling.comparison import naive_export
from odexport.profiling.machine import machine
from placement import PlacementLog  # benchmarks/placement.py, beside this script

RESULTS = Path(__file__).parent / "results"
THREADS = 2
SIZE = (224, 224)
# name -> convert's arguments (None: the defaults, whatever they are when this runs).
VARIANTS: dict[str, dict | None] = {
    "default": None,
    "decomposed-dynamic": {"lowering": "decomposed", "batch": "dynamic"},
    "auto-dynamic": {"lowering": "auto", "batch": "dynamic"},
    "auto-b1": {"lowering": "auto", "batch": 1},
    # Every fixed-batch artifact odexport can make, for issue 17 item 1 (the default within 1.05x of the best).
    "decomposed-b1": {"lowering": "decomposed", "batch": 1},
    "dynamic-weight-b1": {"lowering": "dynamic-weight", "batch": 1},
    "folded-weight-b1": {"lowering": "folded-weight", "batch": 1},
    "taps-dynamic": {"lowering": "depthwise-taps", "batch": "dynamic"},
    # The static twin itself at a dynamic batch: what a dynamic batch costs a model without ODConv.
    "twin-dynamic": {"batch": "dynamic"},
    # int8 (OpenVINO), calibrated on synthetic images as the sweep's int8 rows are: the default's speed-up
    # over its fp32 beside the twin's own, in the same rounds (issue 17 item 4).
    "default-int8": {"precision": "int8", "calibration": "synthetic"},
    "twin-int8": {"precision": "int8", "calibration": "synthetic"},
    # Every layer in its int8 form: the default int8 before `auto` timed candidates quantized, for a model
    # without depthwise layers (od_resnet18), so that the two can be timed in the same rounds.
    "decomposed-int8": {"lowering": "decomposed", "batch": 1, "precision": "int8", "calibration": "synthetic"},
}
TWIN, NAIVE = "static twin", "naive export"
# Issue 17's targets for the default artifact at batch 1 (ratio to the static twin), f32 only: this CPU
# has no bf16 arithmetic (AVX2), so a bf16 hint computes in f32 here and its column is not measured.
TARGETS = {("od_resnet18", 1): {"openvino": 1.15, "onnxruntime": 1.25},
           ("od_resnet18", 4): {"openvino": 1.8, "onnxruntime": 2.0},
           ("od_mobilenetv2_100", 1): {"openvino": 1.5, "onnxruntime": 1.6},
           ("od_mobilenetv2_100", 4): {"openvino": 2.0, "onnxruntime": 2.5}}


@dataclass
class Loaded:
    """One file as a user's code loads it: infer(batch) runs it once on a seeded input of that batch."""

    name: str
    path: Path
    dynamic: bool
    call: object
    feeds: dict[int, np.ndarray] = field(default_factory=dict)

    def infer(self, batch: int) -> None:
        if batch not in self.feeds:
            self.feeds[batch] = np.random.default_rng(batch).standard_normal((batch, 3, *SIZE), dtype=np.float32)
        self.call(self.feeds[batch])


def load(name: str, path: Path, runtime: str) -> Loaded:
    if runtime == "openvino":
        import openvino as ov

        core = ov.Core()
        manifest = json.loads((path.parent / "manifest.json").read_text()) if path.suffix == ".xml" else {}
        hint = {"bf16": "bf16"}.get(manifest.get("precision"), "f32")
        compiled = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                          "INFERENCE_NUM_THREADS": THREADS})
        request = compiled.create_infer_request()
        dynamic = compiled.input(0).get_partial_shape()[0].is_dynamic
        return Loaded(name, path, dynamic, lambda x: request.infer({0: x}))
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0]
    dynamic = not isinstance(first.shape[0], int)
    return Loaded(name, path, dynamic, lambda x: session.run(None, {first.name: x}))


def model_and_twin(arch: str, kernel_num: int | None = None) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The seeded zoo model (at ``kernel_num``, else the architecture's own) and its seeded static twin, in
    eval mode: what every benchmark here compares."""
    kwargs = {} if kernel_num is None else {"kernel_num": kernel_num}
    with torch.no_grad():
        model = randomize_(create_model(arch, **kwargs), seed=0).eval()
        twin = randomize_(create_model(get_arch(arch).static_twin), seed=0).eval()
    return model, twin


def write_twin(twin: torch.nn.Module, target: str, work: Path) -> Path:
    """The static twin as convert writes it for ``target`` at batch 1, in work/twin: every ratio's reference."""
    return convert_model(twin, target=target, output=work / "twin", imgsz=SIZE, batch=1, verify=False).model_file


def save_results(output: Path, context: dict, results: dict, markdown: Callable[[dict], str]) -> str:
    """Stamps the load average at the end on ``context``, writes {"context": context, **results} to
    output.json and markdown(context) to output.md, and returns that markdown."""
    context["load_end"] = [round(value, 2) for value in os.getloadavg()]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps({"context": context, **results}, indent=1) + "\n")
    text = markdown(context)
    output.with_suffix(".md").write_text(text)
    return text


def write_variants(model, twin, runtime: str, variants: list[str], work: Path, log) -> dict[str, Path]:
    target = {"openvino": "openvino", "onnxruntime": "onnxruntime"}[runtime]
    paths = {TWIN: write_twin(twin, target, work), NAIVE: naive_export(model, work / "naive", 1, SIZE)}
    for name in variants:
        began = time.perf_counter()
        options = VARIANTS[name] or {}
        source = twin if name.startswith("twin") else model
        result = convert_model(source, target=target, output=work / name, imgsz=SIZE, verify=False, **options)
        log(f"  {name}: {result.manifest['lowering']}, batch "
            f"{'dynamic' if result.manifest['dynamic']['batch'] else 1}, written in {time.perf_counter() - began:.1f} s")
        paths[name] = result.model_file
    return paths


def median_ms(loaded: Loaded, batch: int, seconds: float) -> float:
    times = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < seconds:
        began = time.perf_counter()
        loaded.infer(batch)
        times.append((time.perf_counter() - began) * 1e3)
    return statistics.median(times)


def measure_group(loaded: list[Loaded], rounds: int, seconds: float, batch8: bool) -> dict[str, dict]:
    """{name: {"ratio": median per-round ratio to the twin at batch 1, "twin_ms", "ms", "b8_per_image":
    median per-round (batch-8 ms / 8) / batch-1 ms, for a dynamic batch}}."""
    for item in loaded:
        item.infer(1)  # first call: one-off compilation and allocation
        if batch8 and item.dynamic:
            item.infer(8)
    ratios: dict[str, list[float]] = {item.name: [] for item in loaded}
    per_image: dict[str, list[float]] = {item.name: [] for item in loaded if batch8 and item.dynamic}
    ms: dict[str, list[float]] = {item.name: [] for item in loaded}
    for turn in range(rounds):
        order = loaded[turn % len(loaded):] + loaded[:turn % len(loaded)]
        this_round = {}
        for item in order:
            this_round[item.name] = median_ms(item, 1, seconds)
            if item.name in per_image:
                per_image[item.name].append(median_ms(item, 8, seconds) / 8 / this_round[item.name])
        for name, value in this_round.items():
            ratios[name].append(value / this_round[TWIN])
            ms[name].append(value)
    return {name: {"ratio": statistics.median(ratios[name]), "ms": statistics.median(ms[name]),
                   "ratios": [round(r, 3) for r in ratios[name]],
                   "b8_per_image": statistics.median(per_image[name]) if name in per_image else None}
            for name in ratios}


def measure_probed(loaded: list[Loaded], rounds: int, seconds: float, batch8: bool,
                   placements: PlacementLog | None = None, attempts: int = 1) -> dict:
    """measure_group's results, with the load average and the CPU hand-off read before and after it.

    With a ``placements`` log, a group whose CPUs read apart against every probe logged so far is measured
    again, up to ``attempts`` times in all (issue 17's targets are for the CPUs together); "attempts" says
    how many it took, "apart" whether the last one still read apart."""
    placements = placements if placements is not None else PlacementLog()
    for attempt in range(1, max(1, attempts) + 1):
        load_before = os.getloadavg()[0]
        results, placement = placements.around(lambda: measure_group(loaded, rounds, seconds, batch8))
        load_after = os.getloadavg()[0]
        apart = placements.apart(placement)
        if not apart:
            break
    return {"handoff_ns": [placement.before_ns, placement.after_ns],
            "load": [round(load_before, 2), round(load_after, 2)],
            "attempts": attempt, "apart": apart, "results": results}


def log(text: str) -> None:
    """Progress on stderr, so that stdout holds only the results."""
    print(text, file=sys.stderr, flush=True)


def add_timing_arguments(parser: argparse.ArgumentParser, *, rounds: int = 7, attempts: bool = True) -> None:
    """--rounds and --round-seconds of measure_group, and (attempts) measure_probed's --attempts."""
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--round-seconds", type=float, default=0.3)
    if attempts:
        parser.add_argument("--attempts", type=int, default=3,
                            help="measure a group again, up to this many times in all, while its two CPUs read apart")


def run_context() -> dict:
    """machine() with the command that ran this benchmark script and when it started: what every result
    file records."""
    return machine() | {"command": f"python benchmarks/{Path(sys.argv[0]).name} " + shlex.join(sys.argv[1:]),
                        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def conditions(group: dict) -> str:
    """The table cells "load | CPUs" of a measured group."""
    cpus = f"{ns(group['handoff_ns'][0])} / {ns(group['handoff_ns'][1])}"
    if group.get("apart"):
        cpus += f", apart in all {group['attempts']} attempts"
    elif group.get("attempts", 1) > 1:
        cpus += f", together at attempt {group['attempts']}"
    return f"{group['load'][0]} / {group['load'][1]} | {cpus}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archs", nargs="+", default=["od_resnet18", "od_mobilenetv2_100"])
    parser.add_argument("--kernel-nums", nargs="+", type=int, default=[1])
    parser.add_argument("--runtimes", nargs="+", default=["openvino", "onnxruntime"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    add_timing_arguments(parser)
    parser.add_argument("--no-batch8", action="store_true", help="skip the batch-8 per-image runs")
    parser.add_argument("--output", type=Path, default=RESULTS / "default")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    context = run_context()
    groups = []
    placements = PlacementLog()  # one for the run: the more probes, the better apart is told from together
    for arch in args.archs:
        for kernel_num in args.kernel_nums:
            model, twin = model_and_twin(arch, kernel_num)
            for runtime in args.runtimes:
                log(f"{arch} {kernel_num}x {runtime}")
                with tempfile.TemporaryDirectory(prefix="odexport-default-") as work:
                    paths = write_variants(model, twin, runtime, args.variants, Path(work), log)
                    loaded = [load(name, path, runtime) for name, path in paths.items()]
                    measured = measure_probed(loaded, args.rounds, args.round_seconds, not args.no_batch8,
                                              placements, args.attempts)
                groups.append({"arch": arch, "kernel_num": kernel_num, "runtime": runtime, **measured,
                               "dynamic": {item.name: item.dynamic for item in loaded}})
                log(markdown_group(groups[-1]))
    save_results(args.output, context, {"groups": groups}, lambda context: markdown(context, groups))


def ns(value: float | None) -> str:
    return "unprobed" if value is None else f"{value:.0f} ns"


def markdown_group(group: dict) -> str:
    target = TARGETS.get((group["arch"], group["kernel_num"]), {}).get(group["runtime"])
    rows = []
    for name, result in group["results"].items():
        if name == TWIN:
            continue
        b8 = result["b8_per_image"]
        precision = (VARIANTS.get(name) or {}).get("precision", "f32")
        shown = target if precision == "f32" else None  # the targets are for f32; ratios are to the f32 twin
        rows.append(f"| {group['arch']} {group['kernel_num']}x | {group['runtime']} {precision} | {name} | "
                    f"{'dynamic' if group['dynamic'][name] else '1'} | {result['ratio']:.2f}x | "
                    f"{'' if b8 is None else f'{b8:.2f}'} | {'' if shown is None else f'<= {shown}x'} | "
                    f"{conditions(group)} |")
    return "\n".join(rows)


def markdown(context: dict, groups: list[dict]) -> str:
    head = ["# The default artifact: candidates loaded as a user loads them", "",
            f"Command: `{context['command']}` ({context['started']}).", "",
            f"{context['cpu']} ({', '.join(context['cpu_flags'])}), {context['logical_cores']} logical cores, "
            f"{THREADS} threads, batch 1, {SIZE[0]}x{SIZE[1]}; load average {context['load_average']} at the start, "
            f"{context['load_end']} at the end; "
            + ", ".join(f"{k} {v}" for k, v in context["versions"].items() if v) + ". "
            "No bf16: this CPU has AVX2 and no bf16 arithmetic, so a bf16 hint computes in f32 here.", "",
            "*ratio*: median over rounds of (file's median ms / f32 static twin's median ms in the same round). "
            "*b8/b1*: a dynamic-batch file's per-image time at batch 8 over its batch-1 time. *CPUs*: the "
            "one-byte round trip between the two CPUs before / after the group (about 400 ns together, "
            "770 ns apart).", "",
            "| model | runtime | artifact | batch | ratio to twin | b8/b1 per image | target | load | CPUs |",
            "|---|---|---|---|---:|---:|---|---|---|"]
    twins = [f"- {g['arch']} {g['kernel_num']}x {g['runtime']}: twin {g['results'][TWIN]['ms']:.2f} ms "
             f"(median of round medians)" for g in groups]
    return "\n".join(head + [markdown_group(g) for g in groups] + ["", "Static twin times:", ""] + twins) + "\n"


if __name__ == "__main__":
    main()
