"""What bounds an ODConv model: its static twin plus only the attention branch, next to our best lowering.

    .venv/bin/python benchmarks/floor.py                        # od_resnet18 and od_mobilenetv2_100, 1x and 4x
    .venv/bin/python benchmarks/floor.py --archs od_mobilenetv2_100 --kernel-nums 1 --seconds 1
    .venv/bin/python benchmarks/floor.py --archs od_mobilenetv2_100 --kernel-nums 1 --linear-means --name floor-linear-means

Every exact ODConv form must at least run each layer's attention branch (the mean of the layer's input,
two small fully connected layers, the gates) and apply its result to the convolution. The *attention
floor* is the static twin's convolution (constant weight, one kernel) plus exactly that: the branch
computed and applied as one per-sample scale on the output. It is not a lowering (its output is not
ODConv's) and is registered only inside this script. When the floor's ratio to the twin is already
above an issue 7 target, no rewriting of the convolution can meet that target: the branch itself is
the bound. Writes benchmarks/results/floor.{json,md} (--name another stem); timings interleaved in one
process, as the sweep.

--linear-means bounds one way of lowering the floor exactly: in MobileNetV2 a third of the layers take an
input that is a linear function of the previous block's (see input_mean_is_linear), so its mean could be
computed from means already taken. The variant drops those layers' attention branches altogether: whatever
the exact computation costs, it cannot save more than this variant does.
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
from default import TARGETS as ISSUE_17_TARGETS
from default import run_context
from placement import PlacementLog
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


LINEAR_MEANS = "attention floor, linear means"


def input_mean_is_linear(spec: ODConvSpec) -> bool:
    """A layer whose input is a linear function of what came before, in the zoo's MobileNetV2: each block's
    expansion (and the last 1x1 convolution) takes the previous block's projection, after its BatchNorm and
    residual add, with no activation between. Its input mean is then the projection's affine map of the
    mean of the projection's own input, already computed for that layer's attention: it needs no pass
    over the activations. The 1x1, ungrouped, widening convolutions are exactly these layers."""
    return spec.kernel_size == 1 and spec.groups == 1 and spec.out_channels > spec.in_channels


class AttentionFloorLinearMeans(AttentionFloor):
    """The attention floor with no attention branch at all on the layers input_mean_is_linear holds for: a
    lower bound on the floor with their input means computed from earlier means (which still runs their
    fully connected layers, and a few tiny nodes in place of each mean). Its outputs are not ODConv's."""

    def forward(self, x: Tensor) -> Tensor:
        if not input_mean_is_linear(self.spec):
            return super().forward(x)
        spec = self.spec
        y = F.conv2d(x, self.weight, None, spec.stride, spec.padding, spec.dilation, spec.groups)
        return apply_output_affine(spec, y)


def issue_17_target(arch: str, kernel_num: int, configuration: str) -> str:
    runtime, precision = configuration.split(" ")
    bound = ISSUE_17_TARGETS.get((arch, kernel_num), {}).get(runtime) if precision == "fp32" else None
    return "" if bound is None else f"≤ {bound}x"


def handoff(row) -> str:
    if row.placement is None:
        return "not probed"
    return f"{row.placement['before_ns']:.0f} / {row.placement['after_ns']:.0f} ns"


def markdown(reports: list[tuple[str, int, CompareReport]], context: dict) -> str:
    lines = ["# Attention floor: the static twin plus only the attention branch", "",
             f"{context['cpu']}, {context['logical_cores']} logical cores, {context['threads']} threads, "
             f"{context['imgsz']}x{context['imgsz']}, batch 1; load average {context['load_start'][0]} at the start, "
             f"{context['load_end'][0]} at the end. Median latency, ratio to the static twin in the same run. "
             f"*CPU hand-off*: a one-byte round trip between the two CPUs before / after the group "
             f"(benchmarks/placement.py; about 400 ns together, 770 ns apart).", "",
             f"    {context['command']}", "",
             "| model | runtime | twin ms | floor | floor, linear means | best lowering | issue 7 target | floor alone vs "
             "target | issue 17 target (default, f32) | CPU hand-off |",
             "|---|---|---:|---:|---:|---|---:|---|---:|---|"]
    for arch, kernel_num, report in reports:
        for key in dict.fromkeys(row.run.key for row in report.rows):
            twin, floor, linear = report.row(STATIC, key), report.row(FLOOR, key), report.row(LINEAR_MEANS, key)
            ours = [row for row in report.rows
                    if row.run.key == key and row.variant not in (STATIC, FLOOR, LINEAR_MEANS)]
            if twin is None or floor is None or not ours:
                continue
            best = min(ours, key=lambda row: row.ratio)
            bound = TARGETS.get((arch, kernel_num), {}).get(configuration(key))
            verdict = "" if bound is None else ("leaves room" if floor.ratio <= bound
                                                else f"already {floor.ratio / bound:.2f}x over")
            lines.append(f"| {arch} {kernel_num}x | {configuration(key)} | {twin.run.ms_per_image:.2f} | "
                         f"{floor.ratio:.2f}x | {f'{linear.ratio:.2f}x' if linear else ''} | "
                         f"{best.ratio:.2f}x ({best.variant}) | "
                         f"{'' if bound is None else f'≤ {bound}x'} | {verdict} | "
                         f"{issue_17_target(arch, kernel_num, configuration(key))} | {handoff(twin)} |")
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
    parser.add_argument("--linear-means", action="store_true",
                        help="also time the floor without the branches of the layers whose input mean is a linear function "
                             "of earlier means (MobileNetV2's expansions): a bound on what computing them so saves")
    parser.add_argument("--name", default="floor", help="file name of the results, without extension")
    args = parser.parse_args()
    register_lowering(FLOOR, "benchmark only: static conv + the attention branch as one scale",
                      dynamic_batch=False, constant_weights=True)(AttentionFloor)
    floors = [FLOOR]
    if args.linear_means:
        register_lowering(LINEAR_MEANS, "benchmark only: the attention floor, no branch where the input mean is linear",
                          dynamic_batch=False, constant_weights=True)(AttentionFloorLinearMeans)
        floors.append(LINEAR_MEANS)
    context = run_context() | {"threads": args.threads, "imgsz": args.imgsz}
    context["load_start"] = context.pop("load_average")
    reports = []
    placements = PlacementLog()
    for arch in args.archs:
        for kernel_num in args.kernel_nums:
            model, twin, twin_name = build(arch, kernel_num)
            print(f"{arch} {kernel_num}x ...", flush=True)
            reports.append((arch, kernel_num, compare_models(
                model, twin, name=f"{arch} kernel_num {kernel_num}", twin_name=twin_name, runtimes=args.runtimes,
                precisions=args.precisions, batch_sizes=(1,), imgsz=args.imgsz, threads=args.threads,
                budget=Budget(iterations=200, seconds=args.seconds, warmup=3, min_iterations=5),
                lowerings=[*args.lowerings, *floors], naive=False, eager=False, placements=placements)))
    context["load_end"] = machine()["load_average"]
    args.output.mkdir(parents=True, exist_ok=True)
    data = {"context": context, "results": [{"arch": a, "kernel_num": k, **r.to_dict()} for a, k, r in reports]}
    (args.output / f"{args.name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (args.output / f"{args.name}.md").write_text(markdown(reports, context))
    print((args.output / f"{args.name}.md").read_text())


if __name__ == "__main__":
    main()
