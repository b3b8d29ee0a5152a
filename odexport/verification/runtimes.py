"""The runtimes verify runs an artifact in: which model files each reads, its runner, its view of the
artifact's tensors, and a runner that also returns chosen intermediate tensors (for odexport.localize)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import InputError
from ..graph import TensorGraph, read_onnx_graph, read_openvino_graph
from ..runners import OnnxRuntimeRunner, OpenVINORunner, Runner


def _onnxruntime_exposing(model_file: Path, tensors: list[str], workdir: Path) -> Runner:
    import onnx

    model = onnx.load(str(model_file))
    present = {output.name for output in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=name) for name in tensors if name not in present)
    copy = workdir / f"{model_file.stem}.exposed.onnx"
    onnx.save(model, str(copy))
    return OnnxRuntimeRunner(copy)


def _openvino_exposing(model_file: Path, tensors: list[str], workdir: Path) -> Runner:
    import openvino as ov

    from ..openvino_extension import odconv_conversion_extension

    core = ov.Core()
    core.add_extension(odconv_conversion_extension())
    model = core.read_model(str(model_file))
    if tensors:
        model.add_outputs(tensors)  # by tensor name: OpenVINO keeps the ONNX names through conversion
    copy = workdir / f"{model_file.stem}.exposed.xml"
    # Saved and read back by the one OpenVINO runner, so its f32 pin applies to layers as to outputs.
    ov.save_model(model, str(copy), compress_to_fp16=False)
    return OpenVINORunner(copy)


@dataclass(frozen=True)
class VerifyRuntime:
    """reads: model file suffixes it runs; the first runtime reading a suffix is that file's default.
    exposing(model_file, tensor names, workdir) -> a runner whose outputs include those tensors."""

    name: str
    reads: tuple[str, ...]
    runner: Callable[[Path], Runner]
    graph: Callable[[Path], TensorGraph]
    exposing: Callable[[Path, list[str], Path], Runner]


RUNTIMES: dict[str, VerifyRuntime] = {
    runtime.name: runtime for runtime in (
        VerifyRuntime("onnxruntime", (".onnx",), OnnxRuntimeRunner, read_onnx_graph, _onnxruntime_exposing),
        VerifyRuntime("openvino", (".xml", ".onnx"), OpenVINORunner, read_openvino_graph, _openvino_exposing),
    )
}


def choose_runtimes(choice: str | None, model_file: Path, registry: dict | None = None,
                    runs_on: tuple[str, ...] | None = None) -> list:
    """None: the file's default runtime; "all": every runtime that reads it; else that runtime.

    registry: {name: runtime with .name and .reads (file suffixes)}; verify's RUNTIMES by default
    (profile has its own, with the same choosing rules). runs_on: the only runtimes the artifact is
    correct on (Artifact.runs_on); others are left out, and naming one is an error.
    """
    runtimes = registry if registry is not None else RUNTIMES
    able = [runtime for runtime in runtimes.values() if model_file.suffix in runtime.reads]
    if runs_on is not None:
        _check_runs_on(choice, model_file, runtimes, able, runs_on)
        able = [runtime for runtime in able if runtime.name in runs_on]
    if choice is None:
        return able[:1]
    if choice == "all":
        return able
    if choice not in runtimes:
        raise InputError(f"unknown runtime {choice!r}", hint=f"choose one of: {', '.join(runtimes)}, all")
    if runtimes[choice] not in able:
        raise InputError(f"{choice} cannot run {model_file.name} (it reads {', '.join(runtimes[choice].reads)})",
                         hint=f"use --runtime {' or '.join(r.name for r in able)}, or pass the artifact's .onnx")
    return [runtimes[choice]]


def _check_runs_on(choice: str | None, model_file: Path, runtimes: dict, able: list, runs_on: tuple[str, ...]) -> None:
    """InputError when the runtime asked for (or every runtime that reads the file) is not one it runs on."""
    allowed = [runtime.name for runtime in able if runtime.name in runs_on]
    refused = choice in runtimes and choice not in runs_on
    if refused or not allowed:
        asked = choice if refused else " or ".join(runtime.name for runtime in able) or "any runtime here"
        raise InputError(f"{model_file.name} is correct on {', '.join(runs_on)} only (the runs_on of its metadata "
                         f"or manifest: it was optimised offline for it); {asked} may load it but compute wrong "
                         "outputs",
                         hint=f"use --runtime {' or '.join(allowed)}" if allowed else
                         "convert with --target onnx (portable) or --target openvino for another runtime")


def left_out_note(chosen: list, model_file: Path, registry: dict | None = None) -> list[str]:
    """A note naming the runtimes that read ``model_file`` but were left out because it is not correct on
    them (empty when none were)."""
    runtimes = registry if registry is not None else RUNTIMES
    names = {runtime.name for runtime in chosen}
    left = [name for name, runtime in runtimes.items() if model_file.suffix in runtime.reads and name not in names]
    return [f"{', '.join(left)} left out: {model_file.name} is correct on {', '.join(sorted(names))} only "
            "(its runs_on)"] if left else []


def build_runner(runtime: VerifyRuntime, model_file: Path) -> Runner:
    """The runtime's runner; a file it cannot load is bad input, not an internal error."""
    try:
        return runtime.runner(model_file)
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{runtime.name} cannot load {model_file}: {first[:200]}",
                         hint="check the file is complete, or try another --runtime") from error
