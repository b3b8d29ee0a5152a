"""convert's stages on the artifact side, in the order they run: calibrate, write the target's files,
record the quantization, check parity, and build the manifest record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..calibration import calibration_samples
from ..errors import InputError
from ..export import ExportedGraph, default_output_names
from ..exporters import INPUT_NAME
from ..outputs import flatten_outputs
from ..manifest import ManifestRecord, TensorRecord, versions
from ..inputs import batches, parity_inputs
from ..lowering.auto import AUTO
from ..backends import WriteRequest
from ..backends.quantization import odconv_quantization
from ..backends.torch import TorchRunner, reference_runner
from ..parity import ParityReport, check_parity, degenerate_reason, degenerate_sentence
from ..precisions import get_precision
from .notes import layer_record
from .options import DYNAMIC_BATCH_CHECKS
from .stages import Job, Rewritten
from .verdict import DEGENERATE_HINT, judge_parity, parity_hint


def second_parity_size(size: tuple[int, int]) -> tuple[int, int]:
    """Another input size for a dynamic-size artifact: larger, non-square, not a multiple of 32."""
    height, width = size
    return height + height // 4 + 3, width + width // 8 + 5


def calibrate(job: Job) -> np.ndarray | None:
    """Calibration samples [N, C, H, W] for a quantized precision; None for any other."""
    if not job.options.quantized:
        return None
    return calibration_samples(job.options.calibration, job.input.size, count=job.options.calibration_size,
                               spec=job.input.preprocessing, channels=job.input.channels)


def write_target(job: Job, rewritten: Rewritten, graph: ExportedGraph, directory: Path,
                 samples: np.ndarray | None, name: str) -> Path:
    """The target's files for ``graph`` in ``directory``; -> the model file."""
    options, target = job.options, job.target
    request = WriteRequest(artifact_metadata(job, rewritten, graph), precision=options.precision,
                           calibration=samples, batch=options.batch or 1, layout=options.layout, name=name,
                           input_name=graph.input_name, reporter=job.reporter)
    with job.reporter.stage(target.name, f"writing {target.summary}, {options.precision}") as stage:
        model_file = target.write(graph.path, directory, request)
        stage.result = f"{model_file.relative_to(directory)}"
    return model_file


def artifact_metadata(job: Job, rewritten: Rewritten, graph: ExportedGraph) -> dict[str, str]:
    """What the model file itself records (ONNX metadata, or the IR's rt_info) about how it was made."""
    options, preprocessing = job.options, job.input.preprocessing
    metadata = {
        "odexport.lowering": options.lowering,
        "odexport.exporter": options.export.exporter,
        "odexport.odconv_layers": json.dumps([layer.path for layer in rewritten.layers]),
        "odexport.generic_layers": json.dumps([layer.path for layer in rewritten.generic]),
        "odexport.preprocessing": str(preprocessing.to_dict() if preprocessing else None),
        "odexport.version": versions()["odexport"] or "",
        "odexport.precision": options.precision,
        "odexport.num_classes": str(graph.output_shapes[0][-1]),
    } | job.target.metadata()
    if preprocessing is not None:  # a model that does not take normalised RGB images has none
        metadata |= {"odexport.layout": preprocessing.layout, "odexport.mean": json.dumps(list(preprocessing.mean)),
                     "odexport.std": json.dumps(list(preprocessing.std))}
    return metadata


def quantization_record(job: Job, rewritten: Rewritten, model_file: Path, samples: np.ndarray | None) -> dict | None:
    """The manifest's record of how the artifact was quantized (None when it was not); each layer that
    stayed float is reported with its reason."""
    if samples is None:
        return None
    calibration = job.options.calibration
    record = {"calibration": str(calibration) if not isinstance(calibration, np.ndarray) else "array (from Python)",
              "calibration_samples": len(samples)}
    record |= odconv_quantization(model_file, rewritten.layers, timed=job.options.lowering == AUTO)
    for layer in record["odconv_layers_float"]:
        job.reporter.info(f"  - {layer['path']} stays float: {layer['reason']}")
    return record


def refuse_a_degenerate_reference(job: Job, rewritten: Rewritten) -> None:
    """Refuse, before the export, a model whose PyTorch outputs on the parity inputs cannot tell a right
    artifact from a wrong one: check_artifact would refuse it too, but only after the export and the
    target were written. Nothing to do without parity, or with --allow-degenerate."""
    options = job.options
    if not options.verify or options.allow_degenerate:
        return
    samples = parity_inputs(job.input.size, channels=job.input.channels, preprocessing=job.input.preprocessing)
    batch_size = options.batch or DYNAMIC_BATCH_CHECKS[0]
    with torch.no_grad():
        flat = flatten_outputs(job.model.eval()(torch.from_numpy(samples[:batch_size])))
    names = default_output_names([path for path, _ in flat])
    reference = reference_runner(TorchRunner(job.model, (INPUT_NAME,), names), rewritten.attention_batchnorm)
    outputs = [reference.infer({INPUT_NAME: batch}) for batch in batches(samples, batch_size)]
    degenerate = {name: reason for name in names
                  if (reason := degenerate_reason(np.concatenate([out[name] for out in outputs]))) is not None}
    if degenerate:
        raise InputError(f"{degenerate_sentence(degenerate)}; nothing was written to {options.output}",
                         hint=DEGENERATE_HINT)


def check_artifact(job: Job, rewritten: Rewritten, graph: ExportedGraph,
                   model_file: Path) -> tuple[ParityReport, list[str]]:
    """Parity of the written artifact against the PyTorch model, at each size and batch it must run at;
    raises (nothing is then written) unless the verdict is a pass; -> the report and notes on it."""
    options, size = job.options, job.input.size
    with job.reporter.stage("Parity", f"PyTorch vs {job.target.name}") as stage:
        runner = job.target.runner(model_file)
        reference = reference_runner(TorchRunner(job.model, (graph.input_name,), graph.output_names),
                                     rewritten.attention_batchnorm)
        sizes = [size, second_parity_size(size)] if options.dynamic_size else [size]
        checks = (options.batch,) if options.batch else DYNAMIC_BATCH_CHECKS
        sample_sets = [parity_inputs(s, channels=job.input.channels, preprocessing=job.input.preprocessing)
                       for s in sizes]
        parity = check_parity(reference, runner, sample_sets, batch_sizes=checks,
                              tolerance=get_precision(options.precision).tolerance)
        stage.result = ("PASSED " if parity.passed else "FAILED ") + parity.summary()
    notes = judge_parity(parity, options.precision, options.output, options.allow_degenerate,
                         parity_hint(rewritten.layers))
    for note in notes:
        job.reporter.info(f"  - {note}")
    return parity, notes


def manifest_record(job: Job, rewritten: Rewritten, graph: ExportedGraph, files: list[str], *, notes: list[str],
                    parity: ParityReport | None, quantization: dict | None, choose, source: dict | None,
                    model_info: dict | None) -> ManifestRecord:
    """The manifest of the artifact: ``files`` inside its directory, the model file first."""
    options, target = job.options, job.target
    return ManifestRecord(
        source=source, model=model_info, target=target.name, runs_on=target.runs_on or None,
        lowering=options.lowering, export={"exporter": options.export.exporter, "opset": options.export.opset},
        precision=options.precision, layout=options.layout, simplified=options.simplify,
        dynamic={"batch": options.batch is None, "size": options.dynamic_size}, files=tuple(files),
        eval_semantics={"attention_batchnorm": rewritten.attention_batchnorm, "temperature": options.temperature},
        notes=tuple(notes), inputs=(TensorRecord(graph.input_name, tuple(graph.input_shape)),),
        outputs=tuple(TensorRecord(name, tuple(shape)) for name, shape in zip(graph.output_names, graph.output_shapes)),
        preprocessing=job.input.preprocessing,
        odconv_layers=tuple(layer_record(layer) | _auto_record(choose, layer.path) for layer in rewritten.layers),
        generic_layers=tuple(layer.record() for layer in rewritten.generic), versions=versions(),
        parity=parity.to_dict() if parity else None, quantization=quantization,
    )


def artifact_files(directory: Path, model_file: Path) -> list[str]:
    """The files in ``directory``, relative to it, the model file first: readers take the first model file."""
    return [str(model_file.relative_to(directory))] + sorted(
        str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file() and p != model_file)


def _auto_record(choose, path: str) -> dict:
    """The manifest's record of what `auto` measured for one layer (empty for other lowerings)."""
    timing = getattr(choose, "timings", {}).get(path)
    if timing is None:
        return {}
    return {"auto": {"timings_ms": timing.timings_ms, "cached": timing.cached}}
