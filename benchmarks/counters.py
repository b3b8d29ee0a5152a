"""Where a runtime spends the time of the default artifact, against the static twin: per-node counters.

    .venv/bin/python benchmarks/counters.py --arch od_resnet18 --kernel-num 1 --runtime onnxruntime
    .venv/bin/python benchmarks/counters.py --arch od_resnet18 --runtime openvino --precision int8

Saves seeded official-format checkpoints of the model and of its static twin (1000 classes), converts each
with plain `convert --target <runtime>` (the default artifact; `--precision int8` adds that and
`--calibration synthetic`), and profiles both with `profile --layers` (2 threads, batch 1, 224x224; ONNX
Runtime's profiler or OpenVINO's performance counters). The twin has
the same modules outside the ODConv layers, so what the twin spends outside those modules is what its
plain convolutions cost in the ODConv layers' place. Writes
benchmarks/results/counters-<arch>-<k>x-<runtime>[-int8].{json,md}, with the command. The two profiles run one
after the other, not interleaved: the split is what this is for, not the ratio.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from default import run_context, save_results  # beside this script
from odexport.api import convert_file
from odexport.checkpoint import save_official_checkpoint
from odexport.models import ODConv2d, create_model, get_arch, randomize_
from odexport.odconv import describe_official
from odexport.pipeline.options import convert_options
from odexport.profiling.profile import profile

RESULTS = Path(__file__).parent / "results"
UNATTRIBUTED = "(unattributed)"  # nodes profile could not tie to a module: layout reorders, mostly


def default_artifact(arch: str, kernel_num: int | None, runtime: str, work: Path, precision: str = "fp32") -> Path:
    kwargs = {"num_classes": 1000} | ({"kernel_num": kernel_num} if kernel_num else {})
    with torch.no_grad():
        model = randomize_(create_model(arch, **kwargs), seed=0)
    checkpoint = work / f"{arch}.pth.tar"
    save_official_checkpoint(model, checkpoint)
    # int8 is calibrated on synthetic images, as benchmarks/sweep.py's int8 rows are: only where time goes is read.
    calibration = "synthetic" if precision == "int8" else None
    options = convert_options(target=runtime, precision=precision, calibration=calibration,
                              output=work / f"{arch}_{runtime}")
    return convert_file(checkpoint, options).output_dir


def layers(artifact: Path, runtime: str) -> dict:
    run = profile(artifact, runtime=runtime, threads=2, layers=True, layer_runs=10).to_dict()["runs"][0]
    return {"median_ms": run["latency"]["median_ms"], **run["layers"]}


def _convolves(layer: dict) -> bool:
    """Whether a module's nodes include a convolution, by node type (OpenVINO's int8 kernel names, such as
    jit_avx2_I8, do not say it)."""
    return any("conv" in op.lower() for op in layer["op_ms"])


def split(odconv: dict, twin: dict) -> dict:
    """ms by what the ODConv model spends it on, each beside what the twin spends in its place.

    A twin convolution stands in for an ODConv layer unless the ODConv model convolves in the same module
    (the stem, the downsampling): a runtime names a fused Conv+ReLU after the ReLU, so the module name alone
    does not say which convolution a node was."""
    shared_convolutions = {layer["module"] for layer in odconv["layers"]
                           if layer["category"] == "other" and _convolves(layer)}
    in_their_place = sum(layer["ms"] for layer in twin["layers"]
                         if _convolves(layer) and layer["module"] not in shared_convolutions)
    twin_reorders = sum(layer["ms"] for layer in twin["layers"] if layer["module"] == UNATTRIBUTED)
    odconv_reorders = sum(layer["ms"] for layer in odconv["layers"] if layer["module"] == UNATTRIBUTED)
    categories = odconv["by_category"]
    return {
        "ODConv convolutions (twin: its convolutions in their place)":
            (categories["odconv convolution"], in_their_place),
        "ODConv attention branches": (categories["odconv attention"], 0.0),
        "nodes no module owns (layout reorders, mostly)": (odconv_reorders, twin_reorders),
        "the other modules (stem, downsampling, pooling, classifier, adds)":
            (categories["other"] - odconv_reorders, twin["total_ms"] - in_their_place - twin_reorders),
        "sum of node times": (odconv["total_ms"], twin["total_ms"]),
    }


def linear_mean_layers(arch: str, kernel_num: int) -> set[str]:
    """The ODConv layers whose input mean is a linear function of means taken before it
    (benchmarks/floor.py's input_mean_is_linear), by module path."""
    from floor import input_mean_is_linear  # beside this script

    model = create_model(arch, kernel_num=kernel_num)
    return {path for path, module in model.named_modules()
            if isinstance(module, ODConv2d) and input_mean_is_linear(describe_official(module))}


def linear_mean_branches(odconv: dict, paths: set[str]) -> str:
    """A sentence: what the attention branches of ``paths`` cost, the most an exact rewrite of their input
    means could save (each mean is one node of its branch)."""
    if not paths:
        return ""
    ms = sum(layer["ms"] for layer in odconv["layers"]
             if layer["category"] == "odconv attention" and layer["module"] in paths)
    return (f"The attention branches of the {len(paths)} layers whose input mean is a linear function of means "
            f"taken before it (benchmarks/floor.py, `input_mean_is_linear`): {ms:.2f} ms in all, of "
            f"{odconv['total_ms']:.2f} ms. An exact rewrite of those means removes one node of each branch and "
            f"adds its own, so it saves less than that.")


def markdown(context: dict, odconv: dict, twin: dict) -> str:
    precision = context.get("precision", "fp32")
    lines = [f"# Where {context['runtime']} spends the time of the default {context['model']}"
             + ("" if precision == "fp32" else f" at {precision}") + ": per-node counters", "",
             f"Command: `{context['command']}` ({context['started']}).", "",
             f"2 threads, batch 1, 224x224, {'f32' if precision == 'fp32' else precision}; mean of {odconv['runs']} profiled runs each. Median latency: "
             f"ODConv {odconv['median_ms']:.2f} ms, static twin {twin['median_ms']:.2f} ms "
             f"({odconv['median_ms'] / twin['median_ms']:.2f}x; not interleaved, see benchmarks/default.py for "
             "ratios).", "",
             "| where | ODConv default (ms) | static twin (ms) | difference (ms) |", "|---|---:|---:|---:|"]
    for name, (ours, theirs) in split(odconv, twin).items():
        lines.append(f"| {name} | {ours:.2f} | {theirs:.2f} | {ours - theirs:+.2f} |")
    by_type: dict[str, float] = {}
    for layer in odconv["layers"]:
        if layer["category"] == "odconv convolution":
            for op, ms in layer.get("op_ms", {}).items():
                by_type[op] = by_type.get(op, 0.0) + ms
    lines += ["", "The ODConv layers' convolutions by node type, all layers together:", "",
              "| node type | ms |", "|---|---:|"]
    lines += [f"| {op} | {ms:.2f} |" for op, ms in sorted(by_type.items(), key=lambda item: -item[1])]
    lines += ["", "The ODConv layers' convolutions, slowest first (kernels: the runtime's node types):", "",
              "| layer | ms | nodes | kernels |", "|---|---:|---:|---|"]
    lines += [f"| {layer['module']} | {layer['ms']:.3f} | {layer['nodes']} | {' '.join(layer['exec_types'])} |"
              for layer in odconv["layers"] if layer["category"] == "odconv convolution"][:12]
    sentence = linear_mean_branches(odconv, set(context.get("linear_mean_layers", [])))
    if sentence:
        lines += ["", sentence]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="od_resnet18")
    parser.add_argument("--kernel-num", type=int, default=1)
    parser.add_argument("--runtime", default="onnxruntime", choices=["onnxruntime", "openvino"])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "int8"])
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    model = f"{args.arch} {args.kernel_num}x"
    suffix = "" if args.precision == "fp32" else f"-{args.precision}"
    output = args.output or RESULTS / f"counters-{args.arch}-{args.kernel_num}x-{args.runtime}{suffix}"
    context = run_context() | {"model": model, "runtime": args.runtime, "precision": args.precision,
                               "linear_mean_layers": sorted(linear_mean_layers(args.arch, args.kernel_num))}
    with tempfile.TemporaryDirectory(prefix="odexport-counters-") as work:
        work = Path(work)
        odconv = layers(default_artifact(args.arch, args.kernel_num, args.runtime, work, args.precision), args.runtime)
        twin = layers(default_artifact(get_arch(args.arch).static_twin, None, args.runtime, work, args.precision),
                      args.runtime)
    print(save_results(output, context, {"odconv": odconv, "twin": twin},
                       lambda context: markdown(context, odconv, twin)))


if __name__ == "__main__":
    main()
