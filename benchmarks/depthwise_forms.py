"""Prototype: the dynamic-batch forms of od_mobilenetv2_100's depthwise ODConv layers, one layer at a time.

    .venv/bin/python benchmarks/depthwise_forms.py [--runtime openvino|onnxruntime] [--kernel-num 1]

Each distinct depthwise layer shape is exported alone with a dynamic batch, as `decomposed`, as
`depthwise-taps` with its taps taken by Slice or by one-hot depthwise convolutions, and beside them
the same layer as a plain depthwise convolution (the static twin's cost) and `dynamic-weight` at batch 1
(the best fixed-batch form), and timed on the runtime as a user's code loads the file (interleaved runs,
minimum over runs: odexport/lowering/tuning.py). Prints one row per shape, ms.
"""

from __future__ import annotations

import argparse
import os

import torch
from torch import nn

from odexport.lowering import get_lowering
from odexport.lowering.depthwise_taps import DepthwiseTapsODConv, is_depthwise
from odexport.lowering.registry import Lowering
from odexport.lowering.tuning import time_layer
from odexport.models import create_model, randomize_
from odexport.rewrite import find_odconv_layers, odconv_input_shapes
from odexport.backends.onnxruntime import OnnxRuntimeRunner
from odexport.backends.openvino import OpenVINORunner


def forms(spec) -> dict[str, Lowering]:
    plain = lambda s: nn.Conv2d(s.in_channels, s.out_channels, s.kernel_size, s.stride, s.padding, s.dilation,  # noqa: E731
                                s.groups, bias=False)
    return {"static conv": Lowering("static conv", "", plain, True, True),
            "decomposed": get_lowering("decomposed"),
            "taps slice": Lowering("taps slice", "", lambda s: DepthwiseTapsODConv(s, "slice"), True, False),
            "taps conv": Lowering("taps conv", "", lambda s: DepthwiseTapsODConv(s, "conv"), True, False)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runtime", default="openvino", choices=["openvino", "onnxruntime"])
    parser.add_argument("--kernel-num", type=int, default=1)
    args = parser.parse_args()
    with torch.no_grad():
        model = randomize_(create_model("od_mobilenetv2_100", kernel_num=args.kernel_num), seed=0).eval()
    shapes = odconv_input_shapes(model, torch.zeros(1, 3, 224, 224))
    runner = ((lambda path: OpenVINORunner(path, threads=2)) if args.runtime == "openvino"
              else (lambda path: OnnxRuntimeRunner(path, threads=2)))
    seen = set()
    print(f"{args.runtime}, load {os.getloadavg()[0]:.1f}")
    print("| input | stride | static conv | decomposed | taps slice | taps conv | dynamic-weight b1 |")
    for layer in find_odconv_layers(model):
        spec = layer.spec
        key = (shapes[layer.path], spec.stride)
        if not is_depthwise(spec) or key in seen:
            continue
        seen.add(key)
        dynamic = time_layer(spec, shapes[layer.path], list(forms(spec).values()), runner, dynamic_batch=True)
        fixed = time_layer(spec, shapes[layer.path], [get_lowering("dynamic-weight")], runner)
        cells = " | ".join(f"{ms:.3f}" for ms in (dynamic | fixed).values())
        print(f"| {list(shapes[layer.path])} | {spec.stride[0]} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
