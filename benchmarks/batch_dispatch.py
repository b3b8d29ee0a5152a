"""A candidate for issue 17's cheap dynamic batch, measured: one ONNX file whose `If` runs the fixed batch-1
graph at batch 1 and the dynamic-batch graph at any other batch.

    .venv/bin/python benchmarks/batch_dispatch.py --output benchmarks/results/batch-dispatch

For each model and runtime, `auto` is timed on that runtime (as convert does) and exported twice from the same
rewrite choices' stages: at a fixed batch of 1 and with a dynamic batch. The dispatch file holds both graphs as
the two branches of one `If` on `Shape(input)[0] == 1`, their weights as outer initializers. Every file is
loaded from its .onnx as a user loads it (OpenVINO `compile_model`, ONNX Runtime `InferenceSession`, 2
threads) and timed in alternating rounds beside the static twin, as benchmarks/default.py times; the dispatch
file must give the batch-1 graph's outputs at batch 1 and the dynamic graph's at batch 8.

Results: benchmarks/results/batch-dispatch.{json,md}, with the command that made them.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

from default import (THREADS, TWIN, add_timing_arguments, conditions, load, log, measure_probed,  # beside this script
                     model_and_twin, run_context, save_results, write_twin)
from odexport.backends import get_target
from odexport.console import SilentReporter
from odexport.pipeline.options import convert_options
from odexport.pipeline.stages import Job, choose_lowerings, export, prepare, read_input, rewrite

RESULTS = Path(__file__).parent / "results"
SIZE = (224, 224)
B1, DYNAMIC, DISPATCH = "auto, batch 1", "auto, dynamic batch", "dispatch (If)"


def auto_onnx(model: torch.nn.Module, runtime: str, batch: int | str, work: Path) -> onnx.ModelProto:
    """The simplified ONNX graph convert builds for ``runtime`` with auto at ``batch``, before the target is
    written."""
    options = convert_options(target=runtime, imgsz=SIZE, batch=batch, output=work / "unused")
    model_input = read_input(model, options, None)
    prepared, unrecognised = prepare(model, options)
    job = Job(prepared, options, model_input, get_target(runtime), SilentReporter())
    rewritten = rewrite(job, choose_lowerings(job, unrecognised), unrecognised)
    directory = work / f"{runtime}-{batch}"
    directory.mkdir(parents=True, exist_ok=True)
    return onnx.load(export(job, rewritten, directory).path)


def as_branch(model: onnx.ModelProto, prefix: str, outer_input: str) -> tuple[onnx.GraphProto, list]:
    """``model``'s graph as an If branch reading ``outer_input``: names prefixed, initializers returned for
    the outer graph."""
    graph = model.graph
    inner_input = graph.input[0].name

    def renamed(name: str) -> str:
        return name if name == "" else outer_input if name == inner_input else prefix + name

    nodes = []
    for node in graph.node:
        node = copy.deepcopy(node)
        node.name = prefix + node.name
        node.input[:] = [renamed(name) for name in node.input]
        node.output[:] = [renamed(name) for name in node.output]
        nodes.append(node)
    initializers = []
    for tensor in graph.initializer:
        tensor = copy.deepcopy(tensor)
        tensor.name = prefix + tensor.name
        initializers.append(tensor)
    outputs = [helper.make_tensor_value_info(prefix + output.name, output.type.tensor_type.elem_type, None)
               for output in graph.output]
    return helper.make_graph(nodes, prefix + "body", [], outputs), initializers


def dispatch(batch1: onnx.ModelProto, dynamic: onnx.ModelProto) -> onnx.ModelProto:
    source = dynamic.graph.input[0]
    then_branch, then_weights = as_branch(batch1, "batch1/", source.name)
    else_branch, else_weights = as_branch(dynamic, "any/", source.name)
    nodes = [helper.make_node("Shape", [source.name], ["dispatch/batch"], start=0, end=1),
             helper.make_node("Equal", ["dispatch/batch", "dispatch/one"], ["dispatch/is_one"]),
             helper.make_node("Squeeze", ["dispatch/is_one"], ["dispatch/cond"]),
             helper.make_node("If", ["dispatch/cond"], [output.name for output in dynamic.graph.output],
                              then_branch=then_branch, else_branch=else_branch)]
    one = helper.make_tensor("dispatch/one", TensorProto.INT64, [1], [1])
    graph = helper.make_graph(nodes, "dispatch", [source], list(dynamic.graph.output),
                              [one] + then_weights + else_weights)
    opsets = {opset.domain: opset.version for opset in [*batch1.opset_import, *dynamic.opset_import]}
    merged = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
    merged.ir_version = dynamic.ir_version
    names = {function.name for function in batch1.functions}
    merged.functions.extend([*batch1.functions, *(f for f in dynamic.functions if f.name not in names)])
    onnx.checker.check_model(merged)
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archs", nargs="+", default=["od_resnet18", "od_mobilenetv2_100"])
    parser.add_argument("--runtimes", nargs="+", default=["openvino", "onnxruntime"])
    add_timing_arguments(parser, attempts=False)
    parser.add_argument("--output", type=Path, default=RESULTS / "batch-dispatch")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    context = run_context()
    groups = []
    for arch in args.archs:
        model, twin = model_and_twin(arch)
        for runtime in args.runtimes:
            log(f"{arch} {runtime}")
            with tempfile.TemporaryDirectory(prefix="odexport-dispatch-") as work:
                work = Path(work)
                batch1, dynamic = auto_onnx(model, runtime, 1, work), auto_onnx(model, runtime, "dynamic", work)
                paths = {TWIN: write_twin(twin, "onnx", work)}
                for name, graph in ((B1, batch1), (DYNAMIC, dynamic), (DISPATCH, dispatch(batch1, dynamic))):
                    paths[name] = work / f"{len(paths)}.onnx"
                    onnx.save(graph, paths[name])
                loaded = [load(name, path, runtime) for name, path in paths.items()]
                check_dispatch({item.name: item for item in loaded})
                measured = measure_probed(loaded, args.rounds, args.round_seconds, batch8=True)
            groups.append({"arch": arch, "runtime": runtime, **measured})
            log(markdown_group(groups[-1]))
    save_results(args.output, context, {"groups": groups}, lambda context: markdown(context, groups))


def check_dispatch(loaded: dict) -> None:
    """The dispatch file computes what its branches compute, at batch 1 and at batch 8."""
    for batch, branch in ((1, B1), (8, DYNAMIC)):
        x = np.random.default_rng(batch).standard_normal((batch, 3, *SIZE), dtype=np.float32)
        got, expected = (np.asarray(loaded[name].call(x)[0]) for name in (DISPATCH, branch))
        assert np.allclose(got, expected, rtol=1e-3, atol=1e-4), (batch, float(np.abs(got - expected).max()))


def markdown_group(group: dict) -> str:
    rows = []
    b1 = group["results"][B1]["ratio"]
    for name in (B1, DYNAMIC, DISPATCH):
        result = group["results"][name]
        b8 = result["b8_per_image"]
        rows.append(f"| {group['arch']} 1x | {group['runtime']} f32 | {name} | {result['ratio']:.2f}x | "
                    f"{result['ratio'] / b1:.2f}x | {'' if b8 is None else f'{b8:.2f}'} | {conditions(group)} |")
    return "\n".join(rows)


def markdown(context: dict, groups: list[dict]) -> str:
    head = ["# A dynamic batch by dispatch: an If between the batch-1 graph and the dynamic-batch graph", "",
            f"Command: `{context['command']}` ({context['started']}).", "",
            f"{context['cpu']}, {context['logical_cores']} logical cores, 2 threads, {SIZE[0]}x{SIZE[1]}, f32; "
            f"load average {context['load_average']} at the start, {context['load_end']} at the end; "
            + ", ".join(f"{k} {v}" for k, v in context["versions"].items() if v) + ".", "",
            "*to twin*: median over rounds of (file's median ms at batch 1 / static twin's in the same round). "
            "*to batch-1 file*: that ratio over the fixed batch-1 file's. *b8/b1*: per-image time at batch 8 "
            "over the same file's batch-1 time. *CPUs*: the one-byte round trip between the two CPUs before / "
            "after the group (about 400 ns together, 770 ns apart).", "",
            "| model | runtime | file | to twin | to batch-1 file | b8/b1 per image | load | CPUs |",
            "|---|---|---|---:|---:|---:|---|---|"]
    return "\n".join(head + [markdown_group(group) for group in groups]) + "\n"


if __name__ == "__main__":
    main()
