"""profile(): latency, throughput, compile time, memory and per-layer times of an artifact, or of a
checkpoint converted on the fly, in each runtime, precision and batch size asked for."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..backends import ALL, HINTS, Backend, RunOptions, choose_runtimes, left_out_note, model_suffixes
from ..backends.registry import precisions_run
from ..console import Reporter, SilentReporter
from ..conversion import convert_checkpoint
from ..errors import InputError
from ..input_channels import DEFAULT_CHANNELS
from ..limits import check_input_memory, parse_imgsz
from ..lowering import get_lowering
from ..lowering.auto import AUTO
from ..precisions import get_precision
from ..pipeline import DEFAULT_LOWERING
from ..renamed import renamed
from ..scratch import scratch_directory
from ..verification.artifact import Artifact, read_artifact, read_metadata
from ..verification.options import input_size_for, parse_batches
from .machine import machine
from .measure import Budget, measure_runtime
from .result import ProfileReport, RunProfile

DEFAULT_THREADS = 2  # comparable numbers across machines; 0 or None lets each runtime choose
# Called before each measurement with (index, total, description), e.g. to advance a progress bar.
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class _Unit:
    """One model file and the batch sizes to run it at."""

    model_file: Path
    batches: tuple[int, ...]
    odconv_layers: tuple[str, ...]
    channels: int  # of the input [B, C, H, W]
    precision: str = "fp32"  # what convert wrote (the manifest's precision)
    runs_on: tuple[str, ...] | None = None  # the only runtimes the file is correct on (Artifact.runs_on)


def profile(
    source: str | Path,
    *,
    runtime: str = "all",
    precision: str | Sequence[str] = "fp32",
    hint: str = "latency",
    threads: int | None = DEFAULT_THREADS,
    streams: int | None = None,
    batch: str | int | Sequence[str | int] | None = None,
    imgsz: str | int | tuple[int, int] | None = None,
    iterations: int = 200,
    time: float = 10.0,
    warmup: int = 5,
    layers: bool = False,
    layer_runs: int = 10,
    lowering: str = DEFAULT_LOWERING,
    arch: str | None = None,
    unsafe_pickle: bool = False,
    reporter: Reporter | None = None,
    progress: Progress | None = None,
    precisions: Sequence[str] | None = None,
    batch_sizes: Sequence[str | int] | None = None,
    seconds: float | None = None,
) -> ProfileReport:
    """Measure ``source``: a convert output directory, a .onnx, an OpenVINO .xml, or a checkpoint (converted
    to ONNX with ``lowering`` in a temporary directory; a fixed-batch lowering once per batch size).

    Keywords are the CLI's options: runtime: a registered backend's name (odexport.backends) or "all"
    (every runtime that reads the file). precision: "fp32", "bf16" (inference precision, where the runtime offers it), "int8" (an
    int8 artifact); one, a comma-separated string or a list. batch: the batch sizes for a dynamic batch
    (one, "1,8" or a list; default 1). iterations/time: the most timed calls and the most seconds per
    configuration. layers: add a per-layer breakdown from ``layer_runs`` profiled calls.
    precisions=, batch_sizes= and seconds= are the old names of precision=, batch= and time=.
    """
    precision = renamed("precisions", precisions, "precision", precision, "fp32")
    batch = renamed("batch_sizes", batch_sizes, "batch", batch)
    time = renamed("seconds", seconds, "time", time, 10.0)
    reporter = reporter or SilentReporter()
    options = _check_options(hint, threads, streams, iterations, time, warmup, _as_list(precision))
    asked_batches = parse_batches(_as_list(batch) or None)
    budget = Budget(iterations=iterations, seconds=time, warmup=warmup, layer_runs=layer_runs if layers else 0)
    source = Path(source)
    notes: list[str] = []
    with scratch_directory("profile", reporter) as work:
        workdir = Path(work)
        if source.is_dir() or source.suffix in model_suffixes():
            units, size = _artifact_unit(source, asked_batches, imgsz)
        else:
            size = _parse_size(imgsz) or (224, 224)
            check_input_memory(max(asked_batches or (1,)), DEFAULT_CHANNELS, size)  # before the checkpoint loads
            units = _convert(source, lowering, asked_batches or (1,), size, arch, unsafe_pickle, workdir, reporter)
        plan = _plan(units, runtime, options, hint, notes)
        runs = _measure(plan, size, budget, hint, threads or None, streams, workdir, reporter, progress)
    model_files = sorted({str(unit.model_file) for unit in units})
    return ProfileReport(str(source), model_files[0] if len(model_files) == 1 else ", ".join(model_files),
                         tuple(size), tuple(runs), machine(), units[0].odconv_layers,
                         tuple(dict.fromkeys(notes)))


def _measure(plan: list[tuple[_Unit, Backend, str, int]], size: tuple[int, int], budget: Budget, hint: str,
             threads: int | None, streams: int | None, workdir: Path, reporter: Reporter,
             progress: Progress | None) -> list[RunProfile]:
    """Each planned configuration measured alone, in order."""
    runs = []
    for index, (unit, chosen, precision, batch) in enumerate(plan):
        description = f"{chosen.name} {precision} batch {batch}"
        if progress:
            progress(index, len(plan), description)
        with reporter.stage("Profile", description) as stage:
            run = measure_runtime(unit.model_file.name, chosen, unit.model_file,
                                  RunOptions(precision, hint, threads, streams), (batch, unit.channels, *size),
                                  budget, odconv_layers=list(unit.odconv_layers), workdir=workdir)
            stage.result = f"median {run.latency.median_ms:.2f} ms, {run.throughput:.1f} images/s"
        runs.append(run)
    if progress:
        progress(len(plan), len(plan), "done")
    return runs


def _artifact_unit(source: Path, asked_batches: tuple[int, ...] | None, imgsz) -> tuple[list[_Unit], tuple[int, int]]:
    """The artifact at ``source`` as the one unit to measure, and the input size to measure it at."""
    found = read_artifact(source)
    size = input_size_for(found, _parse_size(imgsz))
    unit = _Unit(found.model_file, _batches_for(found, asked_batches), _odconv_layers(found),
                 found.channels or DEFAULT_CHANNELS, found.precision or "fp32", found.runs_on)
    check_input_memory(max(unit.batches), unit.channels, size)
    return [unit], size


def _plan(units: list[_Unit], runtime: str, options: tuple[str, ...], hint: str,
          notes: list[str]) -> list[tuple[_Unit, Backend, str, int]]:
    """(unit, backend, precision, batch) to measure, in order; notes on what is left out and why."""
    plan = []
    for unit in units:
        chosen_runtimes = choose_runtimes(runtime, unit.model_file, unit.runs_on)
        if unit.runs_on and runtime == ALL:
            notes += left_out_note(chosen_runtimes, unit.model_file)
        for chosen in chosen_runtimes:
            offered, skipped = _precisions_for(unit, chosen, options)
            notes += skipped
            if hint == "throughput" and chosen.parallel is None:
                notes.append(f"{chosen.name} runs one request at a time: its images/s are batch / mean latency")
            plan += [(unit, chosen, p, b) for p in offered for b in unit.batches]
    if not plan:
        raise InputError(f"nothing to measure at precision {', '.join(options)}: {'; '.join(dict.fromkeys(notes))}",
                         hint="bf16 is an OpenVINO inference precision (add --runtime openvino or all); int8 is "
                              "written by convert --precision int8")
    return plan


def _precisions_for(unit: _Unit, chosen, asked: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(the precisions to run ``unit`` at in runtime ``chosen``, notes on the ones left out).

    A quantized precision lives in the file, not in the session: a quantized artifact runs at its own
    precision only, and a float one cannot run quantized."""
    if get_precision(unit.precision).quantized:
        ignored = [p for p in asked if p != unit.precision]
        return [unit.precision], [f"{unit.model_file.name} is quantized to {unit.precision}: measured as written"
                                  + (f" ({', '.join(ignored)} not applicable)" if ignored else "")]
    offered, notes = [], []
    for p in asked:
        if get_precision(p).quantized:
            notes.append(f"{p} is written by convert, not chosen at run time: convert with --precision {p} and "
                         f"profile that artifact, or use --compare (which quantizes every variant)")
        elif p not in chosen.precisions:
            notes.append(f"{chosen.name} does not offer {p} (skipped)")
        else:
            offered.append(p)
    return offered, notes


def _check_options(hint: str, threads, streams, iterations: int, seconds: float, warmup: int,
                   precisions: Sequence[str]) -> tuple[str, ...]:
    if hint not in HINTS:
        raise InputError(f"unknown performance hint {hint!r}", hint=f"choose one of: {', '.join(HINTS)}")
    for name, value in (("threads", threads), ("streams", streams)):
        if value is not None and value < 0:
            raise InputError(f"--{name} {value} is negative", hint=f"pass a positive --{name}, or leave it out")
    if iterations < 1 or not seconds > 0 or warmup < 0:
        raise InputError(f"cannot time {iterations} iterations in {seconds} s",
                         hint="pass --iterations >= 1 and --time > 0")
    chosen = tuple(dict.fromkeys(p for value in precisions for p in str(value).split(",") if p))
    known = offered_precisions()
    unknown = [p for p in chosen if p not in known]
    if unknown or not chosen:
        raise InputError(f"unknown precision {', '.join(unknown) or '(none)'}",
                         hint=f"choose from: {', '.join(known)} (comma-separate several)")
    return chosen


def offered_precisions() -> tuple[str, ...]:
    """The precisions profile measures: what some backend's sessions compute at, and quantized precisions
    (written by convert, measured as written); not a precision stored in the weights (fp16)."""
    return tuple(p for p in precisions_run() if not get_precision(p).stored)


def _as_list(value) -> list:
    """One value or several: "fp32" -> ["fp32"], 8 -> [8], ["1", "2"] as it is, None -> []."""
    if value is None:
        return []
    return [value] if isinstance(value, (str, int)) else list(value)


def _parse_size(imgsz) -> tuple[int, int] | None:
    return None if imgsz is None else parse_imgsz(imgsz)


def _batches_for(artifact: Artifact, asked: tuple[int, ...] | None) -> tuple[int, ...]:
    fixed = artifact.input_shape[0]
    if fixed is None:
        return asked or (1,)
    if asked and set(asked) != {fixed}:
        raise InputError(f"{artifact.model_file.name} has a fixed batch of {fixed}; cannot run batch "
                         f"{', '.join(map(str, asked))}", hint=f"leave --batch out, or pass --batch {fixed}")
    return (fixed,)


def _odconv_layers(artifact: Artifact) -> tuple[str, ...]:
    """The ODConv layer paths convert recorded: in the manifest, else in the model file's metadata."""
    if artifact.manifest and artifact.manifest.odconv_layers:
        return tuple(layer.path for layer in artifact.manifest.odconv_layers)
    text = read_metadata(artifact.model_file).get("odexport.odconv_layers")
    try:
        return tuple(json.loads(text)) if text else ()
    except ValueError:
        return ()


def _convert(checkpoint: Path, lowering: str, batches: tuple[int, ...], size: tuple[int, int], arch, unsafe_pickle,
             workdir: Path, reporter: Reporter) -> list[_Unit]:
    """The checkpoint as ONNX: one dynamic-batch file, or one file per batch size for a fixed-batch lowering."""
    if not checkpoint.is_file():
        raise InputError(f"{checkpoint}: no such file",
                         hint="pass a checkpoint, a convert output directory, a .onnx or an .xml")
    dynamic = lowering != AUTO and get_lowering(lowering).dynamic_batch
    units = []
    for batch in (None,) if dynamic else batches:
        result = convert_checkpoint(checkpoint, target="onnx", output=workdir / f"converted-b{batch or 'dynamic'}",
                                    imgsz=size, batch=batch or "dynamic", lowering=lowering, arch=arch,
                                    unsafe_pickle=unsafe_pickle, verify=False, reporter=reporter)
        layers = tuple(layer["path"] for layer in result.manifest["odconv_layers"])
        channels = result.manifest["inputs"][0]["shape"][1]
        units.append(_Unit(result.model_file, batches if batch is None else (batch,), layers, channels))
    return units
