"""convert's stages on the model side, in the order they run: load a checkpoint, read the model's input,
prepare the model, choose each layer's lowering, rewrite, export to ONNX, simplify. Each takes the
checked ConvertOptions (or the Job holding them) and returns what the next stage needs."""

from __future__ import annotations

import copy
import importlib.metadata
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..adapters import AdapterOptions
from ..checkpoint import LoadedCheckpoint, load_checkpoint
from ..console import Reporter
from ..errors import InputError
from ..export import ExportedGraph, export_onnx, simplify_onnx
from ..exporters import ExportOptions
from ..generic import GenericLayer, model_fails, take_generic_path
from ..input_channels import resolve_channels
from ..inputs import Preprocessing, for_channels
from ..lowering import get_lowering
from ..lowering.auto import AUTO, MeasuredChooser, auto_candidates, layer_chooser
from ..lowering.tuning import TimingContext, cpu_model
from ..rewrite import ODConvLayer, find_unrecognised_layers, lower_model, odconv_input_shapes, set_temperatures
from ..backends import Target
from .notes import conversion_notes, generic_notes
from .options import ConvertOptions


@dataclass(frozen=True)
class ModelInput:
    """The input the model is exported with. example: [B, C, H, W] (B: the fixed batch, or 1 when dynamic).
    preprocessing: what photographs need to become such an input; None when they cannot (random only)."""

    channels: int
    size: tuple[int, int]
    example: torch.Tensor
    preprocessing: Preprocessing | None


@dataclass(frozen=True)
class Job:
    """What every stage after the model's preparation reads: the prepared model (the PyTorch reference),
    the options, the model's input, the target writing the artifact, and where to report."""

    model: nn.Module
    options: ConvertOptions
    input: ModelInput
    target: Target
    reporter: Reporter


@dataclass(frozen=True)
class Rewritten:
    """The lowered model, its recognised layers and those the generic path took, the notes on how they
    were read, and the attention BatchNorm semantics chosen (None when no layer needed one)."""

    module: nn.Module
    layers: list[ODConvLayer]
    generic: list[GenericLayer]
    notes: list[str]
    attention_batchnorm: str | None


def load(checkpoint: Path, options: ConvertOptions, reporter: Reporter) -> tuple[LoadedCheckpoint, dict, dict]:
    """The checkpoint's model, and the manifest's "source" and "model" records of it."""
    with reporter.stage("Load", f"reading {checkpoint}") as stage:
        loaded = load_checkpoint(checkpoint, arch=options.arch, unsafe_pickle=options.unsafe_pickle)
        stage.result = f"{loaded.arch}, kernel_num {loaded.kernel_num}, {loaded.num_classes} classes"
    for sentence in loaded.inferred:
        reporter.info(f"  - {sentence}")
    source = {"path": str(checkpoint.absolute()), "sha256": loaded.sha256, "format": loaded.source_format}
    model_info = {"arch": loaded.arch, "kernel_num": loaded.kernel_num, "reduction": loaded.reduction,
                  "num_classes": loaded.num_classes, "inferred": list(loaded.inferred)}
    return loaded, source, model_info


def read_input(model: nn.Module, options: ConvertOptions, example_input: torch.Tensor | None) -> ModelInput:
    """The model's input: from ``example_input`` [B, C, H, W] when given (its channels and size), else
    [batch, channels, *imgsz] with channels checked against, or read from, the model's first convolution."""
    if example_input is None:
        channels, size = resolve_channels(model, options.channels), options.imgsz
        example = torch.zeros(options.batch or 1, channels, *size)
    else:
        channels, size = _example_channels(model, options.channels, example_input), tuple(example_input.shape[2:])
        example = example_input[:1].detach().float().repeat(options.batch or 1, 1, 1, 1)
    return ModelInput(channels, (int(size[0]), int(size[1])), example, for_channels(options.preprocessing, channels))


def _example_channels(model: nn.Module, asked: int | None, example_input: torch.Tensor) -> int:
    if example_input.dim() != 4:
        raise InputError(f"example input has shape {list(example_input.shape)}, not [B, C, H, W]",
                         hint="pass one 4-D tensor, e.g. torch.randn(1, 3, 224, 224)")
    given = int(example_input.shape[1])
    if asked is not None and asked != given:
        raise InputError(f"channels={asked} contradicts the example input's {given} channels "
                         f"{list(example_input.shape)}", hint="leave channels out: the example input defines them")
    return given if asked is None else resolve_channels(model, asked)


def prepare(model: nn.Module, options: ConvertOptions) -> tuple[nn.Module, list]:
    """The model in eval mode with the asked temperature set (on a copy: the caller's model keeps its
    own), and the layers no adapter recognises, for the generic path to take (or refuse) in rewrite."""
    model = model.eval()
    unrecognised = find_unrecognised_layers(model)
    if options.temperature is not None:
        model = copy.deepcopy(model)
        set_temperatures(model, options.temperature)
    return model, unrecognised


def choose_lowerings(job: Job, unrecognised: list):
    """What picks each layer's lowering: the one asked for, or for `auto`, timings on the target runtime."""
    options = job.options
    if options.lowering != AUTO:
        return layer_chooser(options.lowering)
    # At int8 every candidate competes too: the target's timing runner quantizes each as it would be
    # quantized, and a layer whose run-time kernel wins stays float.
    candidates = auto_candidates(dynamic_batch=options.batch is None)
    context = _timing_context(job.target, options.precision, options.export)
    return MeasuredChooser(_input_shapes(job, unrecognised), context, job.target.timing_runner(options.precision),
                           candidates, reporter=job.reporter,
                           export_options=options.export, dynamic_batch=options.batch is None)


def _input_shapes(job: Job, unrecognised: list) -> dict[str, tuple[int, ...]]:
    """Each ODConv layer's input shape, from one forward pass; a model that fails in it while it holds
    layers no adapter recognises is refused naming them, as the generic path would."""
    try:
        return odconv_input_shapes(job.model, job.input.example)
    except Exception as error:
        if unrecognised:
            raise model_fails(unrecognised, error) from None
        raise


def _timing_context(target: Target, precision: str, export: ExportOptions) -> TimingContext:
    """Where `auto`'s timings hold: the target's runtime and version, its precision, threads, the CPU, and
    the exporter that writes the graphs timed."""
    runtime = getattr(target.runner, "name", target.name)  # a runner class names its runtime package
    try:
        version = importlib.metadata.version(runtime)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return TimingContext(runtime, version, precision, os.cpu_count() or 1, cpu_model(), export.exporter)


def rewrite(job: Job, choose, unrecognised: list) -> Rewritten:
    """Lower every recognised layer as ``choose`` says; the generic path takes what no adapter describes."""
    options, reporter = job.options, job.reporter
    action = options.lowering
    if options.lowering == AUTO:
        action = "timing candidate lowerings per layer on the target runtime"
    with reporter.stage("Rewrite", f"lowering ODConv layers ({action})") as stage:
        lowered, layers = lower_model(job.model, choose, options=AdapterOptions(options.attention_batchnorm))
        lowered, generic = take_generic_path(lowered, job.model, unrecognised, job.input.example)
        used = Counter(layer.lowering for layer in layers)
        stage.result = (f"{len(layers)} ODConv layers" + "".join(f", {n} {name}" for name, n in used.items())
                        + (f", {len(generic)} generic" if generic else ""))
    notes = conversion_notes(layers) + generic_notes(generic) + ([options.export.note] if options.export.note else [])
    if options.batch_chosen:
        notes.append(f"the batch is fixed at {options.batch} (the fastest artifact); pass --batch dynamic for one "
                     "that serves any batch size")
    for note in notes:
        reporter.info(f"  - {note}")
    semantics = next((layer.attention_batchnorm for layer in layers if layer.attention_batchnorm), None)
    return Rewritten(lowered, layers, generic, notes, semantics)


def export(job: Job, rewritten: Rewritten, work: Path) -> ExportedGraph:
    """The lowered model as an ONNX graph in ``work``, simplified unless the options say not to."""
    options, size = job.options, job.input.size
    single = None if options.lowering == AUTO else get_lowering(options.lowering)
    with job.reporter.stage("ONNX", f"exporting at {size[0]}x{size[1]}, batch {options.batch or 'dynamic'}") as stage:
        graph = export_onnx(rewritten.module, work / "model.onnx", job.input.example,
                            dynamic_batch=options.batch is None, dynamic_size=options.dynamic_size,
                            finalize=single.finalize_onnx if single else None, options=options.export)
        stage.result = (f"{options.export.exporter} exporter, opset {options.export.opset}, "
                        f"input {list(graph.input_shape)}, {graph.node_count} nodes")
    return simplify(job, graph) if options.simplify else graph


def simplify(job: Job, graph: ExportedGraph) -> ExportedGraph:
    with job.reporter.stage("ONNX", "simplifying with onnxsim") as stage:
        before = graph.node_count
        graph = simplify_onnx(graph)
        stage.result = f"{before} -> {graph.node_count} nodes"
    return graph
