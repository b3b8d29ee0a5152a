"""The generic path's cost: the zoo's official ODConv layers through their adapter and the default lowering,
against the same layers forced through the generic path (as if no adapter knew them).

    .venv/bin/python benchmarks/generic.py                                    # what results/generic.md holds
    .venv/bin/python benchmarks/generic.py --arch od_resnet18 --kernel-nums 1 --seconds 2

Both artifacts are exported with a dynamic batch and simplified, as convert writes them, checked against
PyTorch at batch 1 and 3, then timed at batch 1, fp32, interleaved in one process (ONNX Runtime and
OpenVINO, 2 threads by default). The adapter path also folds each following BatchNorm; the generic path cannot.
Writes benchmarks/results/generic.{json,md} (-1thread with --threads 1, -<arch> for another arch): the machine may be shared, so read the ratio, not the times.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from odexport.adapters import UnrecognisedLayer
from odexport.export import export_onnx, simplify_onnx
from odexport.generic import take_generic_path
from odexport.models import create_model, randomize_
from odexport.profiling import Budget
from odexport.profiling.machine import machine
from odexport.profiling.measure import interleaved, runtime_session
from odexport.backends import RunOptions, get_backend
from odexport.profiling.comparison import default_runtimes
from odexport.rewrite import lower_model, odconv_layer_paths

RESULTS = Path(__file__).parent / "results"

# The generic path's cost beside the recognised layers' dynamic-batch form (auto at batch 1 is convert's default).
LOWERING = "decomposed"


def forced_generic(model: torch.nn.Module, example: torch.Tensor) -> torch.nn.Module:
    """``model`` with every ODConv layer taken by the generic path instead of its adapter."""
    found = [UnrecognisedLayer(path, type(model.get_submodule(path)).__name__, "forced by the benchmark")
             for path in odconv_layer_paths(model)]
    generic, _ = take_generic_path(copy.deepcopy(model), model, found, example)
    return generic


def export(module: torch.nn.Module, path: Path, example: torch.Tensor) -> Path:
    return simplify_onnx(export_onnx(module, path, example, dynamic_batch=True)).path


def max_relative_error(model_file: Path, model: torch.nn.Module, size: int) -> float:
    """Worst max |ONNX Runtime - PyTorch| / max |PyTorch| at batch 1 and 3."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch in (1, 3):
        x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        worst = max(worst, float(np.abs(got - expected).max() / np.abs(expected).max()))
    return worst


def measure(files: dict[str, Path], size: int, seconds: float, threads: int) -> dict[str, dict[str, float]]:
    """{runtime: {variant: median ms at batch 1}}."""
    medians: dict[str, dict[str, float]] = {}
    for runtime in map(get_backend, default_runtimes()):
        options = RunOptions(precision="fp32", threads=threads)
        sessions = [runtime_session(label, runtime, path, options, (1, 3, size, size)) for label, path in files.items()]
        runs = interleaved(sessions, Budget(iterations=2000, seconds=seconds), rounds=4)
        for session in sessions:
            session.close()
        medians[runtime.name] = {run.label: run.latency.median_ms for run in runs}
    return medians


def markdown(result: dict) -> str:
    lines = ["# The generic path against an adapter", "",
             f"{result['arch']}, {result['imgsz']}x{result['imgsz']}, batch 1, fp32, {result['threads']} thread(s), "
             f"{result['machine']['cpu']}, {result['machine']['logical_cores']} logical cores; load average "
             f"{result['load'][0]:.2f} at the start, {result['load_end'][0]:.2f} at the end (a shared machine: "
             "read the ratios, measured interleaved in one run, not the times). Median latency; ratio generic / "
             f"adapter. Adapter: its layers' description lowered with `{result['lowering']}` (the default), "
             "following BatchNorms folded.", "",
             f"Command: `{result['command']}`", "",
             "| kernel_num | runtime | adapter ms | generic ms | ratio | max rel. error adapter / generic |",
             "|---:|---|---:|---:|---:|---|"]
    for row in result["rows"]:
        errors = f"{row['relative_error']['adapter']:.1e} / {row['relative_error']['generic']:.1e}"
        for runtime, medians in row["median_ms"].items():
            lines.append(f"| {row['kernel_num']} | {runtime} | {medians['adapter']:.2f} | {medians['generic']:.2f} | "
                         f"{medians['generic'] / medians['adapter']:.2f}x | {errors} |")
    lines += ["", "Max relative error: max |ONNX Runtime - PyTorch| / max |PyTorch| at batch 1 and 3."]
    return "\n".join(lines) + "\n"


def measure_kernel_num(arch: str, kernel_num: int, size: int, seconds: float, threads: int) -> dict:
    with torch.no_grad():
        model = randomize_(create_model(arch, kernel_num=kernel_num), seed=0).eval()
    example = torch.zeros(1, 3, size, size)
    with tempfile.TemporaryDirectory(prefix="odexport-generic-") as work:
        lowered, _ = lower_model(model, LOWERING)
        files = {"adapter": export(lowered, Path(work) / "adapter.onnx", example),
                 "generic": export(forced_generic(model, example), Path(work) / "generic.onnx", example)}
        errors = {label: max_relative_error(path, model, size) for label, path in files.items()}
        medians = measure(files, size, seconds, threads)
    return {"kernel_num": kernel_num, "relative_error": errors, "median_ms": medians,
            "ratio": {runtime: m["generic"] / m["adapter"] for runtime, m in medians.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="od_mobilenetv2_050")
    parser.add_argument("--kernel-nums", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--imgsz", type=int, default=224)
    parser.add_argument("--seconds", type=float, default=20.0, help="timing budget per variant and runtime")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    load = os.getloadavg()
    rows = [measure_kernel_num(args.arch, kernel_num, args.imgsz, args.seconds, args.threads)
            for kernel_num in args.kernel_nums]
    command = (f".venv/bin/python benchmarks/generic.py --arch {args.arch} --kernel-nums "
               f"{' '.join(map(str, args.kernel_nums))} --imgsz {args.imgsz} --seconds {args.seconds:g} --threads {args.threads}")
    result = {"arch": args.arch, "imgsz": args.imgsz, "threads": args.threads, "lowering": LOWERING, "command": command,
              "machine": machine(), "load": load, "load_end": os.getloadavg(), "rows": rows}
    stem = ("generic" + ("" if args.threads == 2 else f"-{args.threads}thread")
            + ("" if args.arch == parser.get_default("arch") else f"-{args.arch}"))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
