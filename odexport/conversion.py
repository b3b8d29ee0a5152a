"""The data path: load -> rewrite ODConv layers -> export ONNX -> write the target -> verify -> move into place."""

from __future__ import annotations

import copy
import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .adapters import AdapterOptions
from .artifact import StagedDirectory, write_manifest
from .calibration import DEFAULT_CALIBRATION_SIZE, calibration_samples
from .checkpoint import load_checkpoint
from .console import Reporter, SilentReporter
from .convert_options import (DEFAULT_LOWERING, check_request, convert_options, default_batch,
                              default_batch_notes, parse_batch, parse_imgsz)
from .errors import InputError, ParityError
from .export import export_onnx, simplify_onnx
from .exporters import ExportOptions, export_options
from .generic import GenericLayer, take_generic_path
from .input_channels import resolve_channels
from .inputs import IMAGENET, Preprocessing, for_channels, parity_inputs
from .lowering import get_lowering
from .lowering.auto import AUTO, MeasuredChooser, auto_candidates, layer_chooser
from .lowering.tuning import TimingContext, cpu_model
from .manifest import MANIFEST_FORMAT, MANIFEST_PRODUCER, versions
from .parity import TOLERANCES, ParityReport, check_parity, degenerate_sentence
from .precisions import get_precision
from .reference import reference_runner
from .rewrite import ODConvLayer, find_unrecognised_layers, lower_model, odconv_input_shapes, set_temperatures
from .runners import TorchRunner
from .scratch import scratch_directory
from .targets import FLAT, WriteRequest, get_target

# Batch sizes a dynamic-batch artifact is checked at: 1 and a size that is neither 1 nor a power of two.
DYNAMIC_BATCH_CHECKS = (1, 3)


@dataclass(frozen=True)
class ConversionResult:
    """notes: what the user should know about how the model was read (eval semantics chosen, temperatures)."""

    output_dir: Path
    model_file: Path
    manifest: dict
    parity: ParityReport | None
    notes: tuple[str, ...] = ()


def second_parity_size(size: tuple[int, int]) -> tuple[int, int]:
    """Another input size for a dynamic-size artifact: larger, non-square, not a multiple of 32."""
    height, width = size
    return height + height // 4 + 3, width + width // 8 + 5


def convert_checkpoint(
    checkpoint: Path,
    *,
    target: str = "openvino",
    output: Path | None = None,
    imgsz: str | int | tuple[int, int] = 224,
    channels: int | None = None,
    batch: str | int | None = None,
    lowering: str = DEFAULT_LOWERING,
    dynamic_size: bool = False,
    simplify: bool = True,
    arch: str | None = None,
    unsafe_pickle: bool = False,
    verify: bool = True,
    precision: str = "fp32",
    calibration: str | Path | None = None,
    calibration_size: int = DEFAULT_CALIBRATION_SIZE,
    layout: str = FLAT,
    temperature: float | None = None,
    attention_batchnorm: str | None = None,
    exporter: str | None = None,
    opset: int | None = None,
    allow_degenerate: bool = False,
    reporter: Reporter | None = None,
) -> ConversionResult:
    """Convert an official-format ODConv checkpoint (or a state dict, or a TorchScript archive)."""
    reporter = reporter or SilentReporter()
    checkpoint = Path(checkpoint)
    options = convert_options(target=target, precision=precision, lowering=lowering, layout=layout, imgsz=imgsz,
                              batch=batch, channels=channels, calibration=calibration,
                              calibration_size=calibration_size, temperature=temperature,
                              attention_batchnorm=attention_batchnorm)
    for note in options.notes:
        reporter.info(note)
    export_options(exporter, opset)  # refused before the checkpoint is read
    with reporter.stage("Load", f"reading {checkpoint}") as stage:
        loaded = load_checkpoint(checkpoint, arch=arch, unsafe_pickle=unsafe_pickle)
        stage.result = f"{loaded.arch}, kernel_num {loaded.kernel_num}, {loaded.num_classes} classes"
    for sentence in loaded.inferred:
        reporter.info(f"  - {sentence}")
    source = {
        "path": str(checkpoint.absolute()),
        "sha256": loaded.sha256,
        "format": loaded.source_format,
    }
    model_info = {
        "arch": loaded.arch,
        "kernel_num": loaded.kernel_num,
        "reduction": loaded.reduction,
        "num_classes": loaded.num_classes,
        "inferred": list(loaded.inferred),
    }
    suffix = "" if precision == "fp32" else f"_{precision}"
    output = Path(output) if output is not None else Path(f"{checkpoint.name.split('.')[0]}_{target}{suffix}")
    return convert_model(
        loaded.model,
        target=options.target,
        output=output,
        imgsz=options.imgsz,
        channels=options.channels,
        batch=options.batch,
        lowering=options.lowering,
        dynamic_size=dynamic_size,
        simplify=simplify,
        verify=verify,
        precision=options.precision,
        calibration=options.calibration,
        calibration_size=options.calibration_size,
        layout=options.layout,
        temperature=options.temperature,
        attention_batchnorm=options.attention_batchnorm,
        exporter=exporter,
        opset=opset,
        allow_degenerate=allow_degenerate,
        reporter=reporter,
        source=source,
        model_info=model_info,
    )


def convert_model(
    model: nn.Module,
    *,
    target: str,
    output: Path,
    imgsz: str | int | tuple[int, int] = 224,
    channels: int | None = None,
    batch: str | int | None = None,
    lowering: str = DEFAULT_LOWERING,
    dynamic_size: bool = False,
    simplify: bool = True,
    verify: bool = True,
    preprocessing: Preprocessing | None = IMAGENET,
    precision: str = "fp32",
    calibration: str | Path | np.ndarray | None = None,
    calibration_size: int = DEFAULT_CALIBRATION_SIZE,
    layout: str = FLAT,
    example_input: torch.Tensor | None = None,
    temperature: float | None = None,
    attention_batchnorm: str | None = None,
    exporter: str | None = None,
    opset: int | None = None,
    allow_degenerate: bool = False,
    reporter: Reporter | None = None,
    source: dict | None = None,
    model_info: dict | None = None,
) -> ConversionResult:
    """Convert an in-memory model with one [B, C, H, W] input to ``target`` in ``output``.

    example_input: [B, C, H, W], defines the channels and size (imgsz is then ignored); without it, an
    image model [B, channels, imgsz]. channels: checked against the model's first convolution, and
    read from it when None (3 when there is none to read; odexport.input_channels). Parity runs on
    seeded random inputs, plus the bundled photographs when ``preprocessing`` fits the channels: RGB
    for 3, grey for 1 (odexport.inputs.for_channels); None: not an image model, random inputs only.
    batch: an int, "dynamic", or None for convert_options.default_batch (1 under auto).
    dynamic_size: symbolic height and width (parity is then checked at a second size too).
    simplify: run onnxsim on the exported graph (parity is checked on the simplified artifact).
    precision: a name in odexport.precisions the target writes; parity uses its TOLERANCES preset.
    calibration: for int8, "synthetic", a folder of images, or preprocessed samples [N, 3, H, W];
    the first ``calibration_size`` are used. layout: FLAT, or "ovms" (openvino: <name>/1/model.xml).
    temperature: sets every recognised layer's temperature kept outside the state dict.
    attention_batchnorm: "apply" or "skip", the eval behaviour to export for layers whose attention
    BatchNorm is skipped at batch 1 (required when the model has such layers; PyTorch parity follows it).
    exporter: "torchscript" or "dynamo" (odexport.exporters) [default: DEFAULT_EXPORTER]; opset: the ONNX
    opset, within the exporter's range [default: the lowest it supports].
    allow_degenerate: write the artifact when parity passed on PyTorch outputs that cannot tell a right
    artifact from a wrong one (all near zero, constant, or the same for every input: an untrained model);
    otherwise that is an InputError, since such a pass proves nothing.
    """
    reporter = reporter or SilentReporter()
    if example_input is not None:
        if example_input.dim() != 4:
            raise InputError(f"example input has shape {list(example_input.shape)}, not [B, C, H, W]",
                             hint="pass one 4-D tensor, e.g. torch.randn(1, 3, 224, 224)")
        given, size = int(example_input.shape[1]), (int(example_input.shape[2]), int(example_input.shape[3]))
        if channels is not None and channels != given:
            raise InputError(f"channels={channels} contradicts the example input's {given} channels "
                             f"{list(example_input.shape)}", hint="leave channels out: the example input defines them")
        channels = given if channels is None else resolve_channels(model, channels)
    else:
        channels, size = resolve_channels(model, channels), parse_imgsz(imgsz)
    preprocessing = for_channels(preprocessing, channels)
    options = AdapterOptions(attention_batchnorm)
    chosen_target = get_target(target)
    check_request(chosen_target, precision, layout, calibration)
    export = export_options(exporter, opset)
    single = None if lowering == AUTO else get_lowering(lowering)
    asked_batch = batch
    fixed_batch = parse_batch(default_batch(single) if batch is None else batch)
    if fixed_batch is None and single is not None and not single.dynamic_batch:
        raise InputError(f"lowering {lowering!r} cannot export a dynamic batch",
                         hint="pass --batch N, or choose a lowering with a dynamic batch (decomposed)")
    model = model.eval()
    unrecognised = find_unrecognised_layers(model)  # taken by the generic path in Rewrite, or refused there
    if temperature is not None:
        model = copy.deepcopy(model)  # the caller's model keeps its temperatures
        set_temperatures(model, temperature)
    if example_input is not None:
        example = example_input[:1].detach().float().repeat(fixed_batch or 1, 1, 1, 1)
    else:
        example = torch.zeros(fixed_batch or 1, channels, *size)
    if lowering == AUTO:
        # A quantized artifact needs constant convolution weights to quantize (depthwise layers excepted).
        quantized = get_precision(precision).quantized
        candidates = auto_candidates(dynamic_batch=fixed_batch is None, constant_weights=quantized)
        depthwise_candidates = auto_candidates(dynamic_batch=False) if quantized and fixed_batch else []
        choose = MeasuredChooser(
            # Input shapes cost a forward pass; with one candidate there is nothing to time.
            odconv_input_shapes(model, example) if max(len(candidates), len(depthwise_candidates)) > 1 else {},
            _timing_context(chosen_target, precision, export), chosen_target.timing_runner(precision), candidates,
            reporter=reporter, depthwise_candidates=depthwise_candidates, export_options=export,
            dynamic_batch=fixed_batch is None,
        )
    else:
        choose = layer_chooser(lowering)

    with StagedDirectory(Path(output), reporter) as staged, scratch_directory("convert", reporter) as work:
        action = "timing candidate lowerings per layer on the target runtime" if lowering == AUTO else lowering
        with reporter.stage("Rewrite", f"lowering ODConv layers ({action})") as stage:
            lowered, layers = lower_model(model, choose, options=options)
            lowered, generic = take_generic_path(lowered, model, unrecognised, example)
            used = Counter(layer.lowering for layer in layers)
            stage.result = (f"{len(layers)} ODConv layers" + "".join(f", {n} {name}" for name, n in used.items())
                            + (f", {len(generic)} generic" if generic else ""))
        notes = (conversion_notes(layers) + generic_notes(generic) + ([export.note] if export.note else [])
                 + default_batch_notes(asked_batch, fixed_batch))
        for note in notes:
            reporter.info(f"  - {note}")
        semantics = next((layer.attention_batchnorm for layer in layers if layer.attention_batchnorm), None)
        with reporter.stage("ONNX", f"exporting at {size[0]}x{size[1]}, batch {fixed_batch or 'dynamic'}") as stage:
            graph = export_onnx(lowered, Path(work) / "model.onnx", example, dynamic_batch=fixed_batch is None,
                                dynamic_size=dynamic_size, finalize=single.finalize_onnx if single else None,
                                options=export)
            stage.result = (f"{export.exporter} exporter, opset {export.opset}, input {list(graph.input_shape)}, "
                            f"{graph.node_count} nodes")
        if simplify:
            with reporter.stage("ONNX", "simplifying with onnxsim") as stage:
                before = graph.node_count
                graph = simplify_onnx(graph)
                stage.result = f"{before} -> {graph.node_count} nodes"
        metadata = {
            "odexport.lowering": lowering,
            "odexport.exporter": export.exporter,
            "odexport.odconv_layers": json.dumps([layer.path for layer in layers]),
            "odexport.generic_layers": json.dumps([layer.path for layer in generic]),
            "odexport.preprocessing": str(preprocessing.to_dict() if preprocessing else None),
            "odexport.version": versions()["odexport"] or "",
            "odexport.precision": precision,
            "odexport.num_classes": str(graph.output_shapes[0][-1]),
        } | chosen_target.metadata()
        if preprocessing is not None:  # a model that does not take normalised RGB images has none
            metadata |= {"odexport.layout": preprocessing.layout, "odexport.mean": json.dumps(list(preprocessing.mean)),
                         "odexport.std": json.dumps(list(preprocessing.std))}
        samples = None
        if get_precision(precision).quantized:
            samples = calibration_samples(calibration, size, count=calibration_size, spec=preprocessing,
                                          channels=channels)
        request = WriteRequest(metadata, precision=precision, calibration=samples, batch=fixed_batch or 1,
                               layout=layout, name=(model_info or {}).get("arch") or "model",
                               input_name=graph.input_name, reporter=reporter)
        with reporter.stage(chosen_target.name, f"writing {chosen_target.summary}, {precision}") as stage:
            model_file = chosen_target.write(graph.path, staged.path, request)
            stage.result = f"{model_file.relative_to(staged.path)}"
        quantization = None
        if samples is not None:
            from .quantization import odconv_quantization

            quantization = {"calibration": str(calibration) if not isinstance(calibration, np.ndarray)
                            else "array (from Python)", "calibration_samples": len(samples)}
            quantization |= odconv_quantization(model_file, layers)
            for layer in quantization["odconv_layers_float"]:
                reporter.info(f"  - {layer['path']} stays float: {layer['reason']}")

        parity = None
        if verify:
            with reporter.stage("Parity", f"PyTorch vs {chosen_target.name}") as stage:
                runner = chosen_target.runner(model_file)
                reference = reference_runner(TorchRunner(model, (graph.input_name,), graph.output_names), semantics)
                sizes = [size, second_parity_size(size)] if dynamic_size else [size]
                checks = (fixed_batch,) if fixed_batch else DYNAMIC_BATCH_CHECKS
                sample_sets = [parity_inputs(s, channels=channels, preprocessing=preprocessing) for s in sizes]
                parity = check_parity(reference, runner, sample_sets, batch_sizes=checks,
                                      tolerance=TOLERANCES[precision])
                stage.result = ("PASSED " if parity.passed else "FAILED ") + parity.summary()
            for note in judge_parity(parity, precision, output, allow_degenerate, parity_hint(layers)):
                reporter.info(f"  - {note}")
                notes.append(note)


            if not parity.passed:
                if not all(math.isfinite(output.limit) for output in parity.outputs):
                    raise InputError(
                        "PyTorch itself gives non-finite outputs (NaN or inf) for this model, so there is "
                        "nothing to compare against; nothing was written",
                        hint="check the checkpoint's weights and BatchNorm statistics",
                    )
                worst = max(parity.outputs, key=lambda o: o.max_abs_error / max(o.limit, 1e-30))
                if worst.max_abs_error <= worst.limit:  # close enough, but predicts other classes
                    problem = (f"top-1 agreement {worst.top1_agreement:.1%} is below the {precision} preset's "
                               f"{parity.tolerance.min_top1_agreement:.1%}")
                else:
                    problem = (f"max abs error {worst.max_abs_error:.3g} exceeds the {precision} limit "
                               f"{worst.limit:.3g} ({worst.max_abs_error / worst.limit:.1f}x)")
                raise ParityError(
                    f"parity check failed on {runner.name}: {worst.name} {problem}; nothing was written to {output}",
                    hint=parity_hint(layers),
                )

        manifest = {
            "format": MANIFEST_FORMAT,
            "producer": MANIFEST_PRODUCER,
            "source": source,
            "model": model_info,
            "target": chosen_target.name,
            "runs_on": list(chosen_target.runs_on) if chosen_target.runs_on else None,
            "lowering": lowering,
            "export": {"exporter": export.exporter, "opset": export.opset},
            "precision": precision,
            "layout": layout,
            "simplified": simplify,
            "dynamic": {"batch": fixed_batch is None, "size": dynamic_size},
            # The model file first: readers take the first model file listed.
            "files": [str(model_file.relative_to(staged.path))] + sorted(
                str(p.relative_to(staged.path)) for p in staged.path.rglob("*") if p.is_file() and p != model_file),
            "eval_semantics": {"attention_batchnorm": semantics, "temperature": temperature},
            "notes": list(notes),
            "inputs": [{"name": graph.input_name, "shape": list(graph.input_shape), "dtype": "float32"}],
            "outputs": [
                {"name": name, "shape": list(shape), "dtype": "float32"}
                for name, shape in zip(graph.output_names, graph.output_shapes)
            ],
            "preprocessing": preprocessing.to_dict() if preprocessing else None,
            "odconv_layers": [layer_record(layer) | _auto_record(choose, layer.path) for layer in layers],
            "generic_layers": [layer.record() for layer in generic],
            "versions": versions(),
            "parity": parity.to_dict() if parity else None,
            "quantization": quantization,
        }
        write_manifest(staged.path, manifest)
        final = staged.commit()
    return ConversionResult(final, final / model_file.relative_to(staged.path), manifest, parity, tuple(notes))




def judge_parity(parity: ParityReport, precision: str, output: Path, allow_degenerate: bool,
                 hint: str = "rerun with --no-verify to keep the artifact for inspection") -> list[str]:
    """Raise unless ``parity`` passed on a reference that can tell a right artifact from a wrong one; return
    notes (a degenerate reference that was allowed)."""
    if not parity.passed:
        if not all(math.isfinite(out.limit) for out in parity.outputs):
            raise InputError("PyTorch itself gives non-finite outputs (NaN or inf) for this model, so there is "
                             "nothing to compare against; nothing was written",
                             hint="check the checkpoint's weights and BatchNorm statistics")
        worst = max((out for out in parity.outputs if not out.passed),
                    key=lambda out: out.max_abs_error / max(out.limit, 1e-300))
        problems = worst.problems(parity.tolerance)
        if "error" in worst.failed_checks:
            problems.insert(0, f"max abs error {worst.max_abs_error:.3g} exceeds the {precision} limit "
                               f"{worst.limit:.3g} ({worst.max_abs_error / max(worst.limit, 1e-300):.1f}x)")
        raise ParityError(f"parity check failed on {parity.runtime}: {worst.name} {', '.join(problems)}; nothing "
                          f"was written to {output}",
                          hint=hint)
    if not parity.degenerate:
        return []
    if not allow_degenerate:
        raise InputError(f"{degenerate_sentence(parity.degenerate)}; nothing was written to {output}",
                         hint="convert trained weights, or pass --allow-degenerate to write the artifact anyway")
    return [f"{degenerate_sentence(parity.degenerate)} (allowed)"]


def parity_hint(layers: list[ODConvLayer]) -> str:
    """What to try after a parity failure. Every lowered layer's description was confirmed against the
    layer's own forward, so a wrong description is not the cause: another lowering can help only when
    some layer was lowered."""
    keep = "--no-verify keeps the artifact for inspection (odexport verify --layers compares every layer's output)"
    if not layers:
        return f"no dynamic convolution was lowered, so another --lowering cannot help; {keep}"
    return ("each dynamic convolution's description was checked against the layer's own forward before export, "
            f"so the difference arises in the lowering or the runtime: rerun with another --lowering; {keep}")


def layer_record(layer: ODConvLayer) -> dict:
    """One recognised layer as the manifest and inspect show it."""
    return {"path": layer.path, "adapter": layer.adapter, "lowering": layer.lowering,
            "attentions": list(layer.spec.active_attentions), "kernel_num": layer.spec.kernel_num,
            "kernel_bias": layer.spec.kernel_bias is not None, "kernel_attention": layer.spec.kernel_attention,
            "folded_batchnorm": layer.folded_batchnorm,
            "epilogue": None if layer.epilogue is None else type(layer.epilogue).__name__,
            "temperature": layer.temperature, "attention_batchnorm": layer.attention_batchnorm}


def conversion_notes(layers: list[ODConvLayer]) -> list[str]:
    """Sentences on how the layers were read that change what the artifact computes."""
    notes = []
    chosen = [layer.path or "(the model)" for layer in layers if layer.attention_batchnorm]
    if chosen:
        semantics = next(layer.attention_batchnorm for layer in layers if layer.attention_batchnorm)
        meaning = ("applied with its running statistics at every batch size (what PyTorch computes at batch > 1)"
                   if semantics == "apply" else "skipped at every batch size (what PyTorch computes at batch 1)")
        notes.append(f"attention BatchNorm of {len(chosen)} layer(s) ({', '.join(chosen[:3])}"
                     f"{', ...' if len(chosen) > 3 else ''}) {meaning}; the PyTorch reference was run to match")
    temperatures = sorted({layer.temperature for layer in layers if layer.temperature is not None})
    if temperatures and temperatures != [1.0]:
        notes.append(f"temperatures outside the state dict, folded into the attention heads: "
                     f"{', '.join(f'{t:g}' for t in temperatures)}")
    return notes


def generic_notes(generic: list[GenericLayer]) -> list[str]:
    """What the user should know about layers that took the generic path."""
    if not generic:
        return []
    paths = [layer.path for layer in generic]
    return [f"{len(paths)} layer(s) no adapter describes ({', '.join(paths[:3])}{', ...' if len(paths) > 3 else ''}) "
            "exported by the generic path: traced as they are, with each batch-folding convolution written per "
            "sample (exact at any batch; no lowering or BatchNorm folding applies; slower than an adapter's, "
            "docs/adapters.md)"]


def _timing_context(target, precision: str, export: ExportOptions) -> TimingContext:
    """Where `auto`'s timings hold: the target's runtime and version, its precision, threads, the CPU, and
    the exporter that writes the graphs timed."""
    import importlib.metadata
    import os

    runtime = getattr(target.runner, "name", target.name)  # a runner class names its runtime package
    try:
        version = importlib.metadata.version(runtime)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return TimingContext(runtime, version, precision, os.cpu_count() or 1, cpu_model(), export.exporter)


def _auto_record(choose, path: str) -> dict:
    """The manifest's record of what `auto` measured for one layer (empty for other lowerings)."""
    timing = getattr(choose, "timings", {}).get(path)
    if timing is None:
        return {}
    return {"auto": {"timings_ms": timing.timings_ms, "cached": timing.cached}}
