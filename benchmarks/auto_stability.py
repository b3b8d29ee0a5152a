"""How much the default artifact varies between conversions: `auto` run several times, each with an empty
timing cache, and the files it writes timed against each other.

    .venv/bin/python benchmarks/auto_stability.py --arch od_mobilenetv2_100 --runtime openvino

`auto` picks each layer's form from one-layer timings, so where two forms are near a tie the pick can
change from one conversion to the next. This converts the model --conversions times with plain `convert`
(each in its own empty ODEXPORT_CACHE_DIR), counts the layers whose lowering differs between the files
(from their manifests), and times the files in alternating rounds beside the static twin and the naive
`torch.onnx.export` (benchmarks/default.py's measure_probed: each file loaded as a user loads it, 2
threads, batch 1, 224x224). The same files are timed in --groups separate groups, one after the other:
how much a file's ratio moves between groups is the measurement's own spread, which a difference between
files has to exceed before it means anything.

Results: benchmarks/results/auto-stability-<arch>-<k>x-<runtime>.{json,md}, with the command.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch

from default import (NAIVE, SIZE, THREADS, TWIN, add_timing_arguments, conditions, load, log,  # beside this script
                     measure_probed, model_and_twin, run_context, save_results, write_twin)
from placement import PlacementLog
from odexport.conversion import convert_model
from odexport.profiling.comparison import naive_export

RESULTS = Path(__file__).parent / "results"


def convert_fresh(model: torch.nn.Module, runtime: str, output: Path) -> Path:
    """Plain `convert` of ``model`` with an empty timing cache, as a first conversion on a machine is."""
    previous = os.environ.get("ODEXPORT_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="odexport-stability-cache-") as cache:
        os.environ["ODEXPORT_CACHE_DIR"] = cache
        try:
            return convert_model(model, target=runtime, output=output, imgsz=SIZE, verify=False).model_file
        finally:
            if previous is None:
                del os.environ["ODEXPORT_CACHE_DIR"]
            else:
                os.environ["ODEXPORT_CACHE_DIR"] = previous


def layer_choices(model_file: Path) -> dict[str, str]:
    manifest = json.loads((model_file.parent / "manifest.json").read_text())
    return {layer["path"]: layer["lowering"] for layer in manifest["odconv_layers"]}


def markdown(context: dict, groups: list[dict], choices: list[dict[str, str]]) -> str:
    differing = [path for path in choices[0] if len({run[path] for run in choices}) > 1]
    lines = [f"# How much the default varies between conversions: {context['model']} in {context['runtime']}", "",
             f"    {context['command']}", "",
             f"{context['started']}; {context['cpu']}, {context['logical_cores']} logical cores, {THREADS} threads, "
             f"batch 1, 224x224, f32. {len(choices)} conversions, each with an empty timing cache. Ratio: median of "
             f"per-round ratios to the static twin, in each of {len(groups)} groups timed one after the other.", "",
             "| file | " + " | ".join(f"group {i + 1}" for i in range(len(groups))) + " |",
             "|---|" + "---:|" * len(groups)]
    lines += [f"| {name} | " + " | ".join(f"{group['results'][name]['ratio']:.2f}x" for group in groups) + " |"
              for name in groups[0]["results"]]
    lines += ["| load, CPU hand-off | " + " | ".join(conditions(group).replace(" | ", ", ") for group in groups) + " |"]
    lines += ["", f"Layers whose lowering differs between the conversions: {len(differing)} of {len(choices[0])}.", ""]
    if differing:
        lines += ["| layer | " + " | ".join(f"conversion {i + 1}" for i in range(len(choices))) + " |",
                  "|---|" + "---|" * len(choices)]
        lines += [f"| {path} | " + " | ".join(run[path] for run in choices) + " |" for path in differing]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="od_mobilenetv2_100")
    parser.add_argument("--kernel-num", type=int, default=1)
    parser.add_argument("--runtime", default="openvino", choices=["openvino", "onnxruntime"])
    parser.add_argument("--conversions", type=int, default=3)
    parser.add_argument("--groups", type=int, default=2, help="time the same files this many times over")
    add_timing_arguments(parser)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    model_name = f"{args.arch} {args.kernel_num}x"
    output = args.output or RESULTS / f"auto-stability-{args.arch}-{args.kernel_num}x-{args.runtime}"
    context = run_context() | {"model": model_name, "runtime": args.runtime}
    model, twin = model_and_twin(args.arch, args.kernel_num)
    with tempfile.TemporaryDirectory(prefix="odexport-stability-") as work:
        work = Path(work)
        paths = {TWIN: write_twin(twin, args.runtime, work), NAIVE: naive_export(model, work / "naive", 1, SIZE)}
        choices = []
        for index in range(1, args.conversions + 1):
            log(f"conversion {index}")
            paths[f"default, conversion {index}"] = convert_fresh(model, args.runtime, work / f"default-{index}")
            choices.append(layer_choices(paths[f"default, conversion {index}"]))
        loaded = [load(name, path, args.runtime) for name, path in paths.items()]
        placements = PlacementLog()
        groups = [measure_probed(loaded, args.rounds, args.round_seconds, False, placements, args.attempts)
                  for _ in range(args.groups)]
    print(save_results(output, context, {"choices": choices, "groups": groups},
                       lambda context: markdown(context, groups, choices)))


if __name__ == "__main__":
    main()
