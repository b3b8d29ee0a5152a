"""Issue 17's "IR whose grouped convolutions follow the batch after `model.reshape`", measured in OpenVINO.

    .venv/bin/python benchmarks/batch_groups.py --output benchmarks/results/batch-groups

Every ODConv layer whose kernel depends on the sample becomes one GroupConvolution with the batch folded
into its groups, as `dynamic-weight` does at a fixed batch: the input [B, C, H, W] viewed as
[1, B*C, H, W], the kernels aggregated per sample as [B*g, C_out/g, C_in/g, k, k]. A layer without spatial
or kernel attention keeps its constant weight. The IR is written from the `custom-op` lowering's ONNX at a
dynamic batch, through a conversion rule of this script's (the attention branch of
odexport.backends.openvino.extension, this form's convolution).

What it measures, for each model:
- whether `compile_model` of the file as written (dynamic batch) succeeds. OpenVINO's CPU plugin takes a
  run-time weight but refuses one whose shape is dynamic ("Doesn't support dynamic weights shape",
  Convolution::isSupportedOperation in src/plugins/intel_cpu/src/nodes/conv.cpp), and here the batch is
  the kernels' first dimension;
- after `model.reshape` to batch 1, and to batch 8: the outputs against PyTorch, and the latency (2
  threads, f32, interleaved rounds) beside auto's fixed batch-1 IR (what convert writes by default) and
  the static twin; batch 8 as time per image;
- beside them, the one run-time-kernel form that does take a dynamic batch: the `custom-op` IR (odexport's
  conversion rule: a batched MatMul of per-sample kernels over im2col columns), at batch 1 and 8.

Results: benchmarks/results/batch-groups.{json,md}, with the command that made them.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch

from batch_dispatch import auto_onnx  # beside this script
from bounded_batch import write_ir
from default import (THREADS, TWIN, Loaded, add_timing_arguments, conditions, load, log, measure_probed,
                     model_and_twin, run_context, save_results, write_twin)
from placement import PlacementLog
from odexport.backends.openvino.extension import attention_logits, kernel_attention
from odexport.conversion import convert_model

RESULTS = Path(__file__).parent / "results"
SIZE = (224, 224)
AUTO_B1, RESHAPED_B1, RESHAPED_B8 = "auto, batch 1", "batch in groups, reshaped to 1", "batch in groups, reshaped to 8"
MATMUL = "custom-op, dynamic batch"


def _i64(values) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _unsqueeze(value, axes: list[int]):
    import openvino.opset13 as ops

    return ops.unsqueeze(value, _i64(axes))


def batch_in_groups(node) -> list:
    """A conversion rule for ai.odexport::ODConv2d: per-sample kernels, the batch folded into the groups."""
    import openvino.opset13 as ops

    x, weight = node.get_input(0), node.get_input(1)
    bias = node.get_input(6) if node.get_input_size() > 6 else None
    kernel_bias = node.get_input(7) if node.get_input_size() > 7 else None
    n, out_channels, c_in_g, k, _ = (dim.get_length() for dim in weight.get_partial_shape())
    groups = node.get_attribute("group")
    strides, pads, dilations = (list(node.get_attribute(name)) for name in ("strides", "pads", "dilations"))
    channel, filter_, spatial, kernel_logits = attention_logits(node, x)
    kernel = kernel_attention(node, kernel_logits)  # [B, n] or None
    if channel is not None:
        x = ops.multiply(x, _unsqueeze(ops.sigmoid(channel), [2, 3]))
    per_group = _i64([groups, out_channels // groups, c_in_g, k, k])
    if kernel is None and spatial is None:  # the same kernel for every sample
        y = ops.group_convolution(x, ops.reshape(weight, per_group, False), strides, pads[:2], pads[2:], dilations)
    else:
        kernels = ops.reshape(weight, _i64([n, -1]), False)
        if kernel is not None:
            kernels = ops.matmul(kernel, kernels, False, False)  # [B, O*C/g*k*k]
        if spatial is not None:
            kernels = ops.reshape(kernels, _i64([0, -1, k * k]), True)
            kernels = ops.multiply(kernels, _unsqueeze(ops.sigmoid(spatial), [1]))
        kernels = ops.reshape(kernels, _i64([-1, out_channels // groups, c_in_g, k, k]), False)
        stacked = ops.reshape(x, _i64([1, -1, 0, 0]), True)  # [1, B*C, H, W]
        y = ops.group_convolution(stacked, kernels, strides, pads[:2], pads[2:], dilations)
        y = ops.reshape(y, _i64([-1, out_channels, 0, 0]), True)
    if kernel_bias is not None:
        per_sample = kernel_bias if kernel is None else ops.matmul(kernel, kernel_bias, False, False)
        y = ops.add(y, _unsqueeze(per_sample, [2, 3]))
    if filter_ is not None:
        y = ops.multiply(y, _unsqueeze(ops.sigmoid(filter_), [2, 3]))
    if bias is not None:
        y = ops.add(y, ops.reshape(bias, _i64([1, -1, 1, 1]), False))
    return [y.output(0)]


def write_custom_op_irs(model: torch.nn.Module, work: Path) -> tuple[Path, Path]:
    """The custom-op ONNX at a dynamic batch as two f32 IRs: (batch in groups, odexport's own rule)."""
    from openvino.frontend.onnx import ConversionExtension

    from odexport.backends.openvino.extension import odconv_conversion_extension
    from odexport.lowering.custom_op import DOMAIN, OP_TYPE

    written = convert_model(model, target="onnx", lowering="custom-op", batch="dynamic",
                            output=work / "custom-op-onnx", imgsz=SIZE, verify=False).model_file
    return (write_ir(written, work / "batch-in-groups", None, [ConversionExtension(OP_TYPE, DOMAIN, batch_in_groups)]),
            write_ir(written, work / "custom-op-ir", None, [odconv_conversion_extension()]))


def compile_as_written(path: Path) -> str:
    """"compiles", or the CPU plugin's reason it does not."""
    import openvino as ov

    try:
        ov.Core().compile_model(str(path), "CPU")
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        # The plugin's own reason is the last "Doesn't support" line, under its generic "Unsupported operation".
        reasons = [line for line in lines if line.startswith("Doesn't support")] or lines[-1:]
        return "fails: " + reasons[-1]
    return "compiles"


def reshaped(name: str, path: Path, batch: int, model: torch.nn.Module) -> tuple[Loaded, float]:
    """The IR reshaped to ``batch`` and compiled (f32, 2 threads), as a Loaded that always runs ``batch``
    images, and its largest error against PyTorch relative to the largest output."""
    import openvino as ov

    core = ov.Core()
    ir = core.read_model(str(path))
    ir.reshape([batch, 3, *SIZE])
    compiled = core.compile_model(ir, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": THREADS})
    images = np.random.default_rng(batch).standard_normal((batch, 3, *SIZE), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(images)).numpy()
    error = float(np.abs(compiled(images)[0] - expected).max() / np.abs(expected).max())
    request = compiled.create_infer_request()
    return Loaded(name, path, False, lambda _: request.infer({0: images})), error


def markdown_group(group: dict) -> str:
    rows = group["results"]
    per_image = rows[RESHAPED_B8]["ms"] / 8
    return (f"| {group['arch']} 1x | {group['as_written']} | {rows[TWIN]['ms']:.2f} ms | "
            f"{rows[AUTO_B1]['ratio']:.2f}x | "
            f"{rows[RESHAPED_B1]['ratio']:.2f}x | {per_image / rows[RESHAPED_B1]['ms']:.2f} | "
            f"{rows[MATMUL]['ratio']:.2f}x | {rows[MATMUL]['b8_per_image']:.2f} | "
            f"{group['errors'][RESHAPED_B1]:.1e} / {group['errors'][RESHAPED_B8]:.1e} | {conditions(group)} |")


def markdown(context: dict, groups: list[dict]) -> str:
    return "\n".join([
        "# The batch folded into grouped convolutions, in OpenVINO", "",
        f"    {context['command']}", "",
        f"{context['started']}; {context['cpu']}, {context['logical_cores']} logical cores, 2 threads, f32, "
        f"224x224. *as written*: `compile_model` of the dynamic-batch IR. Ratios: median of per-round ratios to the "
        f"static twin at batch 1. *batch 8 per image*: the IR reshaped to 8, ms / 8, over the IR reshaped to 1, "
        f"in the same rounds. *custom-op*: odexport's `custom-op` IR at a dynamic batch (a batched MatMul of the "
        f"per-sample kernels over im2col columns), batch 8 per image over its own batch 1. *error*: largest "
        f"difference from PyTorch over the largest output, reshaped to 1 / to 8. "
        f"Load average and the CPU hand-off (benchmarks/placement.py) before / after each group.", "",
        "| model | as written | static twin | auto, batch-1 IR | reshaped to 1 | batch 8 per image | custom-op, "
        "batch 1 | custom-op, batch 8 per image | error | load | CPU hand-off |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|---|",
        *(markdown_group(group) for group in groups), ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archs", nargs="+", default=["od_resnet18", "od_mobilenetv2_100"])
    add_timing_arguments(parser, rounds=5)
    parser.add_argument("--output", type=Path, default=RESULTS / "batch-groups")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    context = run_context()
    groups, placements = [], PlacementLog()
    for arch in args.archs:
        model, twin = model_and_twin(arch)
        log(arch)
        with tempfile.TemporaryDirectory(prefix="odexport-batch-groups-") as work:
            work = Path(work)
            paths = {TWIN: write_twin(twin, "openvino", work)}
            onnx.save(auto_onnx(model, "openvino", 1, work), work / "auto-1.onnx")
            paths[AUTO_B1] = write_ir(work / "auto-1.onnx", work / "auto-1", None)
            in_groups, paths[MATMUL] = write_custom_op_irs(model, work)
            loaded = [load(name, path, "openvino") for name, path in paths.items()]
            errors = {}
            for name, batch in ((RESHAPED_B1, 1), (RESHAPED_B8, 8)):
                item, errors[name] = reshaped(name, in_groups, batch, model)
                loaded.append(item)
            measured = measure_probed(loaded, args.rounds, args.round_seconds, True, placements, args.attempts)
            groups.append({"arch": arch, "as_written": compile_as_written(in_groups), "errors": errors, **measured})
        log(markdown_group(groups[-1]))
    print(save_results(args.output, context, {"groups": groups}, lambda context: markdown(context, groups)))


if __name__ == "__main__":
    main()
