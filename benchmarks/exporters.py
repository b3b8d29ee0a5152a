"""The two PyTorch ONNX exporters on zoo models: parity, dynamic batch, export time, graph size, artifact
latency, and whether verify's layer localisation still finds module outputs.

    .venv/bin/python benchmarks/exporters.py [--archs od_resnet18 od_mobilenetv2_100] [--rounds 15] [--output NAME]
    .venv/bin/python benchmarks/exporters.py --render a.json b.json   # one table from runs made apart

Each model (seeded random weights, kernel_num 4, 224x224, lowering decomposed, dynamic batch, simplified
as convert does) is converted to ONNX by each exporter with convert's own parity check (batches 1 and 3),
then run at batch 8 as well. Latency: batch 1, fp32, 2 threads, ONNX Runtime and OpenVINO, the
exporters' artifacts alternating in one process (rounds of --runs calls each), medians of the per-round
medians; the machine is shared, so the dynamo/torchscript ratio within a round is the figure to read.
Writes benchmarks/results/exporters.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from odexport.conversion import convert_model
from odexport.export import export_onnx
from odexport.exporters import DYNAMO, EXPORTERS, TORCHSCRIPT, export_options
from odexport.inspection import summarize_onnx
from odexport.manifest import versions
from odexport.models import create_model, randomize_
from odexport.rewrite import lower_model
from odexport.backends.onnxruntime import OnnxRuntimeRunner
from odexport.backends.openvino import OpenVINORunner
from odexport.verification import verify_artifact

RESULTS = Path(__file__).parent / "results"
EXPORTER_NAMES = (TORCHSCRIPT, DYNAMO)


def export_seconds(model, exporter: str, size: int, work: Path) -> float:
    """Wall time of the export step alone (lowered module -> checked ONNX file), dynamic batch."""
    lowered, _ = lower_model(model, "decomposed")
    example = torch.zeros(1, 3, size, size)
    start = time.perf_counter()
    export_onnx(lowered, work / f"export-{exporter}.onnx", example, options=export_options(exporter))
    return time.perf_counter() - start


def batch_8_error(model, model_file: Path, size: int) -> float:
    """Max abs error against PyTorch at batch 8, a size neither traced nor checked by convert."""
    x = torch.randn(8, 3, size, size, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        expected = model(x).numpy()
    (actual,) = OnnxRuntimeRunner(model_file).infer({"input": x.numpy()}).values()
    return float(np.abs(actual - expected).max())


def localisation(model, artifact: Path) -> dict[str, str]:
    """{runtime: "checked of modules"} from verify --layers on a correct artifact (nothing may diverge)."""
    report = verify_artifact(artifact, model=model, runtime="all", batch_sizes=[1], layers=True)
    summary = {}
    for result in report.runtimes:
        located = result.layers
        diverging = " (DIVERGES)" if located.first_divergent else ""
        summary[result.runtime] = f"{located.checked} of {located.modules}{diverging}"
    return summary


def convert_with(model, exporter: str, size: int, work: Path) -> dict:
    out = work / exporter
    result = convert_model(model, target="onnx", output=out, imgsz=size, exporter=exporter)
    summary = summarize_onnx(result.model_file)
    return {
        "model_file": result.model_file,
        "parity max abs error (batch 1, 3)": max(o.max_abs_error for o in result.parity.outputs),
        "parity passed": result.parity.passed,
        "input shape": result.manifest["inputs"][0]["shape"],
        "max abs error at batch 8": batch_8_error(model, result.model_file, size),
        "nodes": summary.nodes,
        "bytes": result.model_file.stat().st_size,
        "localisation (checked of modules)": localisation(model, out),
    }


def interleaved_latency(files: dict[str, Path], size: int, rounds: int, runs: int, threads: int) -> dict:
    """{runtime: {exporter: median ms, "dynamo / torchscript": median of the per-round ratios}}."""
    feed = {"input": np.random.default_rng(0).standard_normal((1, 3, size, size), dtype=np.float32)}
    makers = {"onnxruntime": lambda f: OnnxRuntimeRunner(f, threads=threads),
              "openvino f32": lambda f: OpenVINORunner(f, precision="f32", threads=threads)}
    results = {}
    for runtime, make in makers.items():
        runners = {exporter: make(path) for exporter, path in files.items()}
        for runner in runners.values():
            for _ in range(5):
                runner.infer(feed)
        per_round: dict[str, list[float]] = {exporter: [] for exporter in runners}
        for _ in range(rounds):
            for exporter, runner in runners.items():
                times = []
                for _ in range(runs):
                    start = time.perf_counter()
                    runner.infer(feed)
                    times.append((time.perf_counter() - start) * 1e3)
                per_round[exporter].append(statistics.median(times))
        ratios = [d / t for d, t in zip(per_round[DYNAMO], per_round[TORCHSCRIPT])]
        results[runtime] = {exporter: statistics.median(ms) for exporter, ms in per_round.items()}
        results[runtime]["dynamo / torchscript"] = statistics.median(ratios)
        print(runtime, results[runtime], flush=True)
    return results


def measure(arch: str, args, work: Path) -> dict:
    model = randomize_(create_model(arch, kernel_num=args.kernel_num), seed=0).eval()
    row: dict = {"model": f"{arch} {args.kernel_num}x"}
    converted = {}
    for exporter in EXPORTER_NAMES:
        seconds = [export_seconds(model, exporter, args.size, work) for _ in range(args.export_repeats)]
        converted[exporter] = convert_with(model, exporter, args.size, work / arch)
        converted[exporter]["export seconds (median)"] = statistics.median(seconds)
        print(arch, exporter, {k: v for k, v in converted[exporter].items() if k != "model_file"}, flush=True)
    files = {exporter: converted[exporter].pop("model_file") for exporter in EXPORTER_NAMES}
    row["exporters"] = converted
    row["latency ms (batch 1)"] = interleaved_latency(files, args.size, args.rounds, args.runs, args.threads)
    return row


def render(rows: list[dict], context: dict) -> str:
    lines = [f"# The two ONNX exporters, measured\n",
             f"Command: `{context['command']}`\n",
             f"torch {context['versions']['torch']}, onnxscript {context['onnxscript']}, onnxruntime "
             f"{context['versions']['onnxruntime']}, openvino {context['versions']['openvino']}; "
             f"{context['size']}x{context['size']}, kernel_num {context['kernel_num']}, lowering decomposed, "
             f"dynamic batch, onnxsim applied (as convert does). Latency: batch 1, fp32, {context['threads']} "
             f"threads, {context['rounds']} rounds of {context['runs']} calls, the exporters alternating in "
             f"one process; medians. The machine was shared with other work while this ran: absolute "
             f"milliseconds are noisy, the within-round ratio is the figure to read.\n"]
    for row in rows:
        lines.append(f"\n## {row['model']}\n")
        metrics = list(next(iter(row["exporters"].values())))
        lines.append("| | " + " | ".join(EXPORTER_NAMES) + " |")
        lines.append("|---|" + "---|" * len(EXPORTER_NAMES))
        for metric in metrics:
            cells = [row["exporters"][e][metric] for e in EXPORTER_NAMES]
            lines.append(f"| {metric} | " + " | ".join(_cell(c) for c in cells) + " |")
        for runtime, figures in row["latency ms (batch 1)"].items():
            cells = [figures[e] for e in EXPORTER_NAMES]
            lines.append(f"| {runtime} latency, ms | " + " | ".join(_cell(c) for c in cells) + " |")
        lines.append("")
        for runtime, figures in row["latency ms (batch 1)"].items():
            lines.append(f"- {runtime}: dynamo / torchscript latency, median of per-round ratios: "
                         f"{figures['dynamo / torchscript']:.3f}")
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=["od_resnet18", "od_mobilenetv2_100"])
    parser.add_argument("--kernel-num", type=int, default=4)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--export-repeats", type=int, default=2)
    parser.add_argument("--output", default="exporters", help="results file name, without suffix")
    parser.add_argument("--render", nargs="+", type=Path, help="render these results .json files as one .md")
    args = parser.parse_args()
    if args.render:
        runs = [json.loads(path.read_text()) for path in args.render]
        context = runs[0]["context"] | {"command": "` and `".join(run["context"]["command"] for run in runs)}
        for key in ("rounds", "runs"):  # runs made apart may have measured more or less
            context[key] = " / ".join(dict.fromkeys(str(run["context"][key]) for run in runs))
        rows = [row for run in runs for row in run["rows"]]
        (RESULTS / f"{args.output}.md").write_text(render(rows, context))
        print((RESULTS / f"{args.output}.md").read_text())
        return

    import onnxscript

    context = {"command": "python benchmarks/exporters.py " + " ".join(sys.argv[1:]),
               "machine": platform.processor() or platform.machine(), "threads": args.threads,
               "size": args.size, "kernel_num": args.kernel_num, "rounds": args.rounds, "runs": args.runs,
               "opsets": {name: export_options(name).opset for name in EXPORTERS},
               "onnxscript": onnxscript.__version__, "versions": versions()}
    RESULTS.mkdir(exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="odexport-exporters-") as tmp:
        for arch in args.archs:
            rows.append(measure(arch, args, Path(tmp)))
            (RESULTS / f"{args.output}.json").write_text(json.dumps({"context": context, "rows": rows}, indent=2) + "\n")
    (RESULTS / f"{args.output}.md").write_text(render(rows, context))
    print((RESULTS / f"{args.output}.md").read_text())


if __name__ == "__main__":
    main()
