"""Latency of each lowering against the static twin, per runtime (batch 1, 2 threads, median of N runs).

    .venv/bin/python benchmarks/lowerings.py [--archs od_resnet18 ...] [--kernel-nums 1 4] [--runs 50]

Writes benchmarks/results/lowerings.json and .md. Timings are noisy on a shared machine: compare the
ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from odexport.conversion import convert_model
from odexport.manifest import versions
from odexport.models import create_model, get_arch, randomize_
from odexport.backends.onnxruntime import OnnxRuntimeRunner
from odexport.backends.openvino import OpenVINORunner

RESULTS = Path(__file__).parent / "results"


def median_ms(runner, feed: dict[str, np.ndarray], runs: int) -> float:
    for _ in range(5):
        runner.infer(feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner.infer(feed)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def measure(model, lowering: str | None, size: int, runs: int, threads: int, work: Path) -> dict[str, float]:
    result = convert_model(model, target="onnx", output=work / f"{lowering}", imgsz=size, lowering=lowering or "decomposed",
                           verify=False)
    feed = {"input": np.random.default_rng(0).standard_normal((1, 3, size, size), dtype=np.float32)}
    runners = {"openvino f32": OpenVINORunner(result.model_file, threads=threads),
               "onnxruntime": OnnxRuntimeRunner(result.model_file, threads=threads)}
    return {name: median_ms(runner, feed, runs) for name, runner in runners.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=["od_resnet18"])
    parser.add_argument("--kernel-nums", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--lowerings", nargs="+", default=["decomposed", "custom-op", "dynamic-weight"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for arch in args.archs:
            twin = get_arch(arch).static_twin
            static = measure(randomize_(create_model(twin), seed=0).eval(), None, args.size, args.runs,
                             args.threads, work / twin)
            rows.append({"model": twin, "lowering": "static", **static})
            print(rows[-1], flush=True)
            for kernel_num in args.kernel_nums:
                model = randomize_(create_model(arch, kernel_num=kernel_num), seed=0).eval()
                for lowering in args.lowerings:
                    ms = measure(model, lowering, args.size, args.runs, args.threads, work / f"{arch}{kernel_num}")
                    ratios = {f"{k} / static": v / static[k] for k, v in ms.items()}
                    rows.append({"model": f"{arch} {kernel_num}x", "lowering": lowering, **ms, **ratios})
                    print(rows[-1], flush=True)

    RESULTS.mkdir(exist_ok=True)
    context = {"machine": platform.processor() or platform.machine(), "threads": args.threads, "batch": 1,
               "size": args.size, "runs": args.runs, "versions": versions()}
    (RESULTS / "lowerings.json").write_text(json.dumps({"context": context, "rows": rows}, indent=2) + "\n")
    columns = ["model", "lowering", "openvino f32", "onnxruntime", "openvino f32 / static", "onnxruntime / static"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [row.get(c, "") for c in columns]
        lines.append("| " + " | ".join(f"{c:.2f}" if isinstance(c, float) else str(c) for c in cells) + " |")
    header = (f"Median latency in ms, batch 1, {args.size}x{args.size}, {args.threads} threads, "
              f"{args.runs} runs; ratios to the static twin in the same run.\n\n")
    (RESULTS / "lowerings.md").write_text(header + "\n".join(lines) + "\n")
    print((RESULTS / "lowerings.md").read_text())


if __name__ == "__main__":
    main()
