"""What bounds an ODConv model: its static twin plus only the attention branch, next to our best lowering.

    .venv/bin/python benchmarks/floor.py                        # od_resnet18 and od_mobilenetv2_100, 1x and 4x
    .venv/bin/python benchmarks/floor.py --archs od_mobilenetv2_100 --kernel-nums 1 --seconds 1

Every exact ODConv form must at least run each layer's attention branch (the mean of the layer's input,
two small fully connected layers, the gates) and apply its result to the convolution. The *attention
floor* is the static twin's convolution (constant weight, one kernel) plus exactly that: the branch
computed and applied as one per-sample scale on the output. It is not a lowering (its output is not
ODConv's) and is registered only inside this script. When the floor's ratio to the twin is already
above an issue 7 target, no rewriting of the convolution can meet that target: the branch itself is
the bound. Writes benchmarks/results/floor.{json,md}; timings interleaved in one process, as the sweep.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from odexport.lowering import register_lowering
from odexport.odconv import AttentionBranch, ODConvSpec, apply_output_affine
from odexport.profiling import Budget
from odexport.profiling.comparison import STATIC, CompareReport, compare_models
from odexport.profiling.machine import machine
from sweep import RESULTS, TARGETS, build, configuration

FLOOR = "attention floor"


class AttentionFloor(nn.Module):
    """The static convolution with the first kernel, plus the layer's attention branch applied as one
    per-sample scale (so that no runtime can drop it): x [B, C_in, H, W] -> [B, C_out, H', W']."""

    def __init__(self, spec: ODConvSpec) -> None:
        super().__init__()
        self.spec = spec
        self.attention = AttentionBranch(spec)
        self.register_buffer("weight", spec.weight[0].clone())

    def forward(self, x: Tensor) -> Tensor:
        spec = self.spec
        y = F.conv2d(x, self.weight, None, spec.stride, spec.padding, spec.dilation, spec.groups)
        gates = [gate.mean(dim=1) for gate in self.attention(x) if gate is not None]
        # A scale of 1 + 1e-6 * (mean gate): the branch is live, the values stay the static conv's.
        scale = 1 + 1e-6 * torch.stack(gates, dim=1).sum(dim=1)
        return apply_output_affine(spec, y * scale.reshape(-1, 1, 1, 1))


def markdown(reports: list[tuple[str, int, CompareReport]], context: dict) -> str:
    lines = ["# Attention floor: the static twin plus only the attention branch", "",
             f"{context['cpu']}, {context['logical_cores']} logical cores, {context['threads']} threads, "
             f"{context['imgsz']}x{context['imgsz']}, batch 1; load average {context['load_start'][0]} at the start, "
             f"{context['load_end'][0]} at the end. Median latency, ratio to the static twin in the same run.", "",
             "| model | runtime | twin ms | floor | best lowering | target | floor alone vs target |",
             "|---|---|---:|---:|---|---:|---|"]
    for arch, kernel_num, report in reports:
        for key in dict.fromkeys(row.run.key for row in report.rows):
            twin, floor = report.row(STATIC, key), report.row(FLOOR, key)
            ours = [row for row in report.rows if row.run.key == key and row.variant not in (STATIC, FLOOR)]
            if twin is None or floor is None or not ours:
                continue
            best = min(ours, key=lambda row: row.ratio)
            bound = TARGETS.get((arch, kernel_num), {}).get(configuration(key))
            verdict = "" if bound is None else ("leaves room" if floor.ratio <= bound
                                                else f"already {floor.ratio / bound:.2f}x over")
            lines.append(f"| {arch} {kernel_num}x | {configuration(key)} | {twin.run.ms_per_image:.2f} | "
                         f"{floor.ratio:.2f}x | {best.ratio:.2f}x ({best.variant}) | "
                         f"{'' if bound is None else f'≤ {bound}x'} | {verdict} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=["od_resnet18", "od_mobilenetv2_100"])
    parser.add_argument("--kernel-nums", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--runtimes", nargs="+", default=["openvino", "onnxruntime"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--lowerings", nargs="+", default=["auto", "dynamic-weight", "folded-weight"])
    parser.add_argument("--imgsz", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=2.0, help="at most this long per measurement")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    register_lowering(FLOOR, "benchmark only: static conv + the attention branch as one scale",
                      dynamic_batch=False, constant_weights=True)(AttentionFloor)
    context = machine() | {"threads": args.threads, "imgsz": args.imgsz}
    context["load_start"] = context.pop("load_average")
    reports = []
    for arch in args.archs:
        for kernel_num in args.kernel_nums:
            model, twin, twin_name = build(arch, kernel_num)
            print(f"{arch} {kernel_num}x ...", flush=True)
            reports.append((arch, kernel_num, compare_models(
                model, twin, name=f"{arch} kernel_num {kernel_num}", twin_name=twin_name, runtimes=args.runtimes,
                precisions=args.precisions, batch_sizes=(1,), imgsz=args.imgsz, threads=args.threads,
                budget=Budget(iterations=200, seconds=args.seconds, warmup=3, min_iterations=5),
                lowerings=[*args.lowerings, FLOOR], naive=False, eager=False)))
    context["load_end"] = machine()["load_average"]
    args.output.mkdir(parents=True, exist_ok=True)
    data = {"context": context, "results": [{"arch": a, "kernel_num": k, **r.to_dict()} for a, k, r in reports]}
    (args.output / "floor.json").write_text(json.dumps(data, indent=2) + "\n")
    (args.output / "floor.md").write_text(markdown(reports, context))
    print((args.output / "floor.md").read_text())


if __name__ == "__main__":
    main()
