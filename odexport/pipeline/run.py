"""convert as a sequence of named stages: load -> rewrite -> export (and simplify) -> write the target
(calibrated and quantized for a quantized precision) -> parity -> manifest -> move into place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..console import Reporter, SilentReporter
from ..errors import InputError
from ..parity import ParityReport
from ..scratch import scratch_directory
from ..staging import StagedDirectory
from ..backends import get_target
from .options import ConvertOptions
from .stages import Job, choose_lowerings, export, load, prepare, read_input, rewrite
from .writing import (artifact_files, calibrate, check_artifact, manifest_record, quantization_record,
                      refuse_a_degenerate_reference, write_target)


@dataclass(frozen=True)
class ConversionResult:
    """notes: what the user should know about how the model was read (eval semantics chosen, temperatures)."""

    output_dir: Path
    model_file: Path
    manifest: dict
    parity: ParityReport | None
    notes: tuple[str, ...] = ()


def convert_checkpoint(checkpoint: Path, options: ConvertOptions, *,
                       reporter: Reporter | None = None) -> ConversionResult:
    """Convert an official-format ODConv checkpoint (or a state dict, or a TorchScript archive); without
    an output, into <checkpoint stem>_<target>[_<precision> when not fp32]."""
    reporter = reporter or SilentReporter()
    checkpoint = Path(checkpoint)
    _report_notes(options, reporter)
    loaded, source, model_info = load(checkpoint, options, reporter)
    suffix = "" if options.precision == "fp32" else f"_{options.precision}"
    options = options.with_output(Path(f"{checkpoint.name.split('.')[0]}_{options.target}{suffix}"))
    return _convert(loaded.model, options, None, reporter, source, model_info)


def convert_model(model: nn.Module, options: ConvertOptions, *, example_input: torch.Tensor | None = None,
                  reporter: Reporter | None = None, source: dict | None = None,
                  model_info: dict | None = None) -> ConversionResult:
    """Convert an in-memory model with one [B, C, H, W] input as ``options`` say, into ``options.output``.

    example_input: [B, C, H, W], defines the channels and size (options.imgsz is then ignored); without
    it, an image model [B, channels, imgsz]. Parity runs on seeded random inputs, plus the bundled
    photographs when the options' preprocessing fits the channels (odexport.inputs.for_channels).
    source, model_info: the manifest's records of where the model came from.
    Raises InputError (bad input), ParityError (outputs differ beyond the tolerance; nothing written).
    """
    reporter = reporter or SilentReporter()
    _report_notes(options, reporter)
    return _convert(model, options, example_input, reporter, source, model_info)


def _report_notes(options: ConvertOptions, reporter: Reporter) -> None:
    for note in options.notes:
        reporter.info(note)


def _convert(model: nn.Module, options: ConvertOptions, example_input: torch.Tensor | None, reporter: Reporter,
             source: dict | None, model_info: dict | None) -> ConversionResult:
    if options.output is None:
        raise InputError("convert_model needs an output directory", hint="pass output= to convert_options")
    model_input = read_input(model, options, example_input)
    model, unrecognised = prepare(model, options)
    job = Job(model, options, model_input, get_target(options.target), reporter)
    choose = choose_lowerings(job, unrecognised)
    with StagedDirectory(options.output, reporter) as staged, scratch_directory("convert", reporter) as work:
        rewritten = rewrite(job, choose, unrecognised)
        refuse_a_degenerate_reference(job, rewritten)
        graph = export(job, rewritten, Path(work))
        samples = calibrate(job)
        name = (model_info or {}).get("arch") or "model"
        model_file = write_target(job, rewritten, graph, staged.path, samples, name)
        quantization = quantization_record(job, rewritten, model_file, samples)
        parity, verdict = check_artifact(job, rewritten, graph, model_file) if options.verify else (None, [])
        notes = rewritten.notes + verdict
        record = manifest_record(job, rewritten, graph, artifact_files(staged.path, model_file), notes=notes,
                                 parity=parity, quantization=quantization, choose=choose, source=source,
                                 model_info=model_info)
        record.write(staged.path)
        final = staged.commit()
    return ConversionResult(final, final / model_file.relative_to(staged.path), record.to_json(), parity,
                            tuple(notes))
