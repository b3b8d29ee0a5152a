"""A candidate for issue 17's cheap dynamic batch in OpenVINO, measured: the dynamic-batch graph saved as an IR
whose batch is bounded (1..N) instead of unbounded.

    .venv/bin/python benchmarks/bounded_batch.py --output benchmarks/results/bounded-batch

OpenVINO's CPU plugin compiles an input dimension with an upper bound differently from a fully dynamic one
(it can size its buffers for the bound). For each model, `auto` is timed on OpenVINO (as convert does) and
exported at a fixed batch of 1 and with a dynamic batch (benchmarks/batch_dispatch.py's auto_onnx). The
dynamic graph is written as two IRs, the batch unbounded and bounded to 1..--bound, and every file is
loaded as a user loads it (`compile_model` of the file, f32, 2 threads) and timed in alternating rounds
beside the static twin (benchmarks/default.py's measure_probed). The bounded IR must give the dynamic
graph's outputs at batch 1 and 8.

Results: benchmarks/results/bounded-batch.{json,md}, with the command that made them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch

from batch_dispatch import auto_onnx  # beside this script
from default import (THREADS, TWIN, add_timing_arguments, conditions, load, log, measure_probed, model_and_twin,
                     run_context, save_results, write_twin)

RESULTS = Path(__file__).parent / "results"
SIZE = (224, 224)
B1, DYNAMIC, BOUNDED = "auto, batch 1", "auto, dynamic batch", "auto, batch bounded 1..N"


def write_ir(onnx_path: Path, directory: Path, bound: int | None, extension: list | None = None) -> Path:
    """The ONNX file as an f32 OpenVINO IR in ``directory``, its batch bounded to 1..bound (None: as is);
    extension: conversion rules for ov.convert_model (custom-domain nodes)."""
    import openvino as ov

    model = ov.convert_model(str(onnx_path), extension=extension)
    if bound is not None:
        shape = model.input(0).get_partial_shape()
        shape[0] = ov.Dimension(1, bound)
        model.reshape({model.input(0): shape})
    directory.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, directory / "model.xml", compress_to_fp16=False)
    (directory / "manifest.json").write_text(json.dumps({"precision": "fp32"}))  # what default.load reads
    return directory / "model.xml"


def check_bounded(loaded: dict, bound: int) -> None:
    """The bounded IR computes what the unbounded one does, at batch 1 and at the bound."""
    import openvino as ov

    core = ov.Core()
    unbounded, bounded = (core.compile_model(str(loaded[name].path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
                          for name in (DYNAMIC, BOUNDED))
    for batch in (1, bound):
        x = np.random.default_rng(batch).standard_normal((batch, 3, *SIZE), dtype=np.float32)
        expected, got = unbounded(x)[0], bounded(x)[0]
        if not np.allclose(expected, got, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max())):
            raise AssertionError(f"the bounded IR differs at batch {batch}")


def markdown_group(group: dict) -> str:
    rows = group["results"]
    line = f"| {group['arch']} 1x | {rows[TWIN]['ms']:.2f} ms |"
    for name in (B1, DYNAMIC, BOUNDED):
        line += f" {rows[name]['ratio'] / rows[B1]['ratio']:.2f}x |"
    for name in (DYNAMIC, BOUNDED):
        per_image = rows[name]["b8_per_image"]
        line += f" {per_image:.2f} |" if per_image is not None else " |"
    return line + f" {conditions(group)} |"


def markdown(context: dict, groups: list[dict]) -> str:
    return "\n".join([
        "# A bounded dynamic batch in OpenVINO", "",
        f"    {context['command']}", "",
        f"{context['started']}; {context['cpu']}, {context['logical_cores']} logical cores, 2 threads, f32, "
        f"224x224. Batch-1 latency against the fixed batch-1 file (median of per-round ratios, each to the static "
        f"twin of the same round); *batch 8 per image*: batch-8 ms / 8 over batch-1 ms of the same file. "
        f"Load average and the CPU hand-off (benchmarks/placement.py) before / after each group.", "",
        f"| model | static twin | batch-1 file | dynamic IR | bounded IR (1..{context['bound']}) | dynamic, "
        f"batch 8 per image | bounded, batch 8 per image | load | CPU hand-off |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
        *(markdown_group(group) for group in groups), ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archs", nargs="+", default=["od_resnet18", "od_mobilenetv2_100"])
    parser.add_argument("--bound", type=int, default=8)
    add_timing_arguments(parser, attempts=False)
    parser.add_argument("--output", type=Path, default=RESULTS / "bounded-batch")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    context = run_context() | {"bound": args.bound}
    groups = []
    for arch in args.archs:
        model, twin = model_and_twin(arch)
        log(arch)
        with tempfile.TemporaryDirectory(prefix="odexport-bounded-") as work:
            work = Path(work)
            paths = {TWIN: write_twin(twin, "openvino", work)}
            for name, batch in ((B1, 1), (DYNAMIC, "dynamic")):
                onnx.save(auto_onnx(model, "openvino", batch, work), work / f"{batch}.onnx")
            paths[B1] = write_ir(work / "1.onnx", work / "b1", None)
            paths[DYNAMIC] = write_ir(work / "dynamic.onnx", work / "dynamic", None)
            paths[BOUNDED] = write_ir(work / "dynamic.onnx", work / "bounded", args.bound)
            loaded = [load(name, path, "openvino") for name, path in paths.items()]
            check_bounded({item.name: item for item in loaded}, args.bound)
            groups.append({"arch": arch, **measure_probed(loaded, args.rounds, args.round_seconds, batch8=True)})
        log(markdown_group(groups[-1]))
    print(save_results(args.output, context, {"groups": groups}, lambda context: markdown(context, groups)))


if __name__ == "__main__":
    main()
