"""A lead for ONNX Runtime's slow ODConv convolutions: the spatial attention applied on the output side.

    .venv/bin/python benchmarks/output_taps.py --output benchmarks/results/output-taps

ONNX Runtime runs the static twin's convolutions in its blocked (NCHWc) layout, which it only uses for a
Conv whose weight is a constant; od_resnet18's default spends its extra time there
(benchmarks/results/counters-od_resnet18-1x-onnxruntime.md). `decomposed` keeps the weight constant by
scaling k*k shifted copies of the input (im2col, k*k depthwise one-hot convolutions and a Concat) before
a 1x1 convolution over k*k times the channels; `dynamic-weight` computes the kernel per sample, which then
cannot be pre-packed. This script times a third form, on one layer at a time: one 1x1 convolution with a
constant weight computes every tap's output at once ([B, k*k*C_out, H, W]), each tap's block is scaled by
its spatial attention, and a grouped convolution with constant one-hot kernels shifts and sums the taps.
Every weight is a constant and nothing depends on the batch size. Exact (checked against `decomposed` here)
for kernel_num 1, groups 1 and stride 1, the layers it is timed on.

For each 3x3 stride-1 ODConv layer shape of od_resnet18 at 224x224, the forms are exported as one-layer
graphs at a fixed batch of 1 and timed in ONNX Runtime (2 threads, `InferenceSession` of the file),
interleaved, beside a plain Conv with the same weight (the static cost). Not a lowering: a lead.
Results: benchmarks/results/output-taps.{json,md}, with the command.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from default import run_context  # beside this script
from odexport.export import export_onnx
from odexport.lowering import get_lowering
from odexport.models import ODConv2d, create_model, randomize_
from odexport.odconv import AttentionBranch, ODConvSpec, apply_output_affine, describe_official, scale_channels

RESULTS = Path(__file__).parent / "results"
STATIC, OUTPUT_TAPS = "static conv", "output-side taps"
FORMS = (STATIC, "decomposed", "dynamic-weight", OUTPUT_TAPS)


class StaticConv(nn.Module):
    def __init__(self, spec: ODConvSpec) -> None:
        super().__init__()
        self.spec = spec
        self.register_buffer("weight", spec.weight[0].clone())

    def forward(self, x: Tensor) -> Tensor:
        spec = self.spec
        return F.conv2d(x, self.weight, None, spec.stride, spec.padding, spec.dilation, spec.groups)


class OutputTaps(nn.Module):
    """y = filter * sum_p spatial[p] * shift_p(W_p (channel * x)), the sum over taps p as a grouped
    convolution with constant one-hot kernels over the [C_out, tap]-ordered outputs of one 1x1 convolution."""

    def __init__(self, spec: ODConvSpec) -> None:
        super().__init__()
        n, c_out, c_in, k, _ = spec.weight.shape
        if n != 1 or spec.groups != 1 or tuple(spec.stride) != (1, 1):
            raise ValueError("output-side taps are written here for kernel_num 1, groups 1, stride 1")
        self.spec = spec
        self.attention = AttentionBranch(spec)
        # Rows ordered [C_out, tap]: row o * k*k + p holds W[o, :, p].
        self.register_buffer("tap_weights", spec.weight[0].permute(0, 2, 3, 1).reshape(c_out * k * k, c_in, 1, 1)
                             .contiguous())
        one_hot = torch.eye(k * k).reshape(1, k * k, k, k).repeat(c_out, 1, 1, 1)  # [C_out, k*k, k, k]
        self.register_buffer("shift_kernels", one_hot.contiguous())

    def forward(self, x: Tensor) -> Tensor:
        spec = self.spec
        att = self.attention(x)
        taps = F.conv2d(scale_channels(x, att), self.tap_weights)  # [B, C_out * k*k, H, W]
        scale = att.spatial.repeat(1, spec.out_channels)  # [B, C_out * k*k], a constant repeat count
        taps = taps * scale.unsqueeze(-1).unsqueeze(-1)
        y = F.conv2d(taps, self.shift_kernels, None, 1, spec.padding, spec.dilation, spec.out_channels)
        if att.filter is not None:
            y = y * att.filter.unsqueeze(-1).unsqueeze(-1)
        return apply_output_affine(spec, y)


def layer_specs(arch: str, size: int) -> list[tuple[str, ODConvSpec, tuple[int, ...]]]:
    """(path, spec, input shape) of each distinct 3x3 stride-1 ODConv layer shape, randomized."""
    with torch.no_grad():
        model = randomize_(create_model(arch), seed=0).eval()
    shapes: dict[str, tuple[int, ...]] = {}

    def record(path: str):
        def hook(_module, args) -> None:
            shapes.setdefault(path, tuple(args[0].shape))
        return hook

    hooks = [module.register_forward_pre_hook(record(path))
             for path, module in model.named_modules() if isinstance(module, ODConv2d)]
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    found, seen = [], set()
    for path, module in model.named_modules():
        if isinstance(module, ODConv2d) and module.kernel_size == 3 and module.stride == 1:
            key = (shapes[path], module.out_planes)
            if key not in seen:
                seen.add(key)
                found.append((path, describe_official(module), shapes[path]))
    return found


def build(form: str, spec: ODConvSpec) -> nn.Module:
    if form == STATIC:
        return StaticConv(spec)
    if form == OUTPUT_TAPS:
        return OutputTaps(spec)
    return get_lowering(form).build(spec)


def session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def median_ms(run, seconds: float) -> float:
    times, start = [], time.perf_counter()
    while len(times) < 5 or time.perf_counter() - start < seconds:
        began = time.perf_counter()
        run()
        times.append((time.perf_counter() - began) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="od_resnet18")
    parser.add_argument("--imgsz", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--round-seconds", type=float, default=0.3)
    parser.add_argument("--output", type=Path, default=RESULTS / "output-taps")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    context = run_context()
    rows = []
    with tempfile.TemporaryDirectory(prefix="odexport-output-taps-") as work:
        for path, spec, shape in layer_specs(args.arch, args.imgsz):
            x = torch.from_numpy(np.random.default_rng(0).standard_normal(shape, dtype=np.float32))
            modules = {form: build(form, spec).eval() for form in FORMS}
            with torch.no_grad():
                expected, got = modules["decomposed"](x), modules[OUTPUT_TAPS](x)
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
            runs = {}
            for form, module in modules.items():
                graph = export_onnx(module, Path(work) / f"{path}-{form}.onnx", x, dynamic_batch=False)
                runner, feed = session(graph.path, args.threads), {graph.input_name: x.numpy()}
                runs[form] = lambda runner=runner, feed=feed: runner.run(None, feed)
                runs[form]()
            ms: dict[str, list[float]] = {form: [] for form in FORMS}
            for turn in range(args.rounds):
                order = list(FORMS[turn % len(FORMS):] + FORMS[:turn % len(FORMS)])
                for form in order:
                    ms[form].append(median_ms(runs[form], args.round_seconds))
            row = {"layer": path, "input": list(shape), "out_channels": spec.out_channels,
                   "ms": {form: statistics.median(values) for form, values in ms.items()}}
            rows.append(row)
            print(path, {form: round(value, 3) for form, value in row["ms"].items()}, file=sys.stderr, flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps({"context": context, "rows": rows}, indent=1) + "\n")
    lines = ["# The spatial attention on the output side, in ONNX Runtime: one layer at a time", "",
             f"    {context['command']}", "",
             f"{context['started']}; {context['cpu']}, {context['logical_cores']} logical cores, {args.threads} threads, "
             f"batch 1, each layer at its input size in {args.arch} at {args.imgsz}x{args.imgsz}. Median ms over "
             f"{args.rounds} interleaved rounds; ratio to the plain Conv with the same weight in brackets.", "",
             "| layer | input | " + " | ".join(FORMS) + " |", "|---|---|" + "---:|" * len(FORMS)]
    for row in rows:
        static = row["ms"][STATIC]
        cells = [f"{row['ms'][form]:.3f} ({row['ms'][form] / static:.2f}x)" for form in FORMS]
        lines.append(f"| {row['layer']} | {row['input']} | " + " | ".join(cells) + " |")
    args.output.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(args.output.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
