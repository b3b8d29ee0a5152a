"""convert's options, validated once at the edge (CLI or Python API) into one ConvertOptions before any
checkpoint is read: a bad value costs the user a second, not a model load and an export. The stages
below take that object and check nothing of it again."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..adapters import AdapterOptions
from ..calibration import DEFAULT_CALIBRATION_SIZE, check_calibration_source
from ..errors import InputError
from ..exporters import ExportOptions, export_options
from ..input_channels import DEFAULT_CHANNELS
from ..inputs import IMAGENET, Preprocessing
from ..limits import (MAX_BATCH, MAX_CALIBRATION_SIZE, SAMPLE_BYTES_PER_VALUE, check_count, check_input_memory,
                      check_memory, parse_imgsz)
from ..lowering import get_lowering
from ..lowering.auto import AUTO
from ..lowering.tuning import tuning_budget
from ..precisions import get_precision
from ..backends import FLAT, get_target

# The defaults of convert's conversion, in this one place: a change of default is a one-line edit here.
DEFAULT_TARGET = "openvino"
DEFAULT_PRECISION = "fp32"
# The default lowering and batch were chosen by measuring the artifacts as users load them
# (benchmarks/default.py, benchmarks/results/default.md): a fixed batch of 1 with each layer's form timed
# on the target runtime ran od_mobilenetv2_100 1.5x its static twin in OpenVINO where the dynamic-batch
# forms ran 5.6-12x (per-sample arithmetic at a dynamic batch compiles slowly), and od_resnet18 closest
# to its twin too.
DEFAULT_LOWERING = "auto"
AUTO_BATCH = 1  # the batch `auto` writes when none is asked for; --batch dynamic asks for one of any size
# None: not asked (see resolve_batch): AUTO_BATCH under auto, else dynamic where the lowering exports one.
DEFAULT_BATCH: int | str | None = None
DEFAULT_IMGSZ = 224

# Batch sizes a dynamic-batch artifact is checked at: 1 and a size that is neither 1 nor a power of two.
DYNAMIC_BATCH_CHECKS = (1, 3)


@dataclass(frozen=True)
class ConvertOptions:
    """What convert was asked for, every value checked (made by convert_options).

    target: a name in odexport.targets. precision: a name in odexport.precisions the target writes; parity
    uses its tolerance preset. lowering: a name in odexport.lowering, or "auto" (timed per layer on the
    target runtime). layout: FLAT, or "ovms" (openvino: <name>/1/model.xml). imgsz: (H, W).
    batch: the artifact's fixed batch, or None for a dynamic batch (when not asked: dynamic where the
    lowering allows it, else 1). channels: as asked, None to read them from the model's first convolution.
    calibration: for a quantized precision, "synthetic", a folder of images, or preprocessed samples
    [N, C, H, W]; the first ``calibration_size`` are used. temperature: set on every recognised layer that
    keeps one outside the state dict. attention_batchnorm: "apply" or "skip", the eval behaviour to export
    for layers whose attention BatchNorm is skipped at batch 1 (required when the model has such layers).
    export: the exporter and opset (odexport.exporters). dynamic_size: symbolic height and width (parity
    is then checked at a second size too). simplify: run onnxsim (parity is checked on the result).
    verify: check parity before writing. allow_degenerate: write the artifact when parity passed on
    PyTorch outputs that cannot tell a right artifact from a wrong one (an untrained model); otherwise
    that is an InputError. preprocessing: what a 3-channel input expects, None for a model that does not
    take normalised images. output: None for the default the caller derives from the checkpoint or module
    name. arch, unsafe_pickle: how a checkpoint is read. notes: warnings on options that have no effect.
    batch_chosen: the batch was not asked for, and convert fixed it (it says so, and the manifest keeps it).
    """

    target: str
    precision: str
    lowering: str
    layout: str
    imgsz: tuple[int, int]
    batch: int | None
    channels: int | None
    calibration: str | Path | np.ndarray | None
    calibration_size: int
    temperature: float | None
    attention_batchnorm: str | None
    export: ExportOptions
    dynamic_size: bool = False
    simplify: bool = True
    verify: bool = True
    allow_degenerate: bool = False
    preprocessing: Preprocessing | None = IMAGENET
    output: Path | None = None
    arch: str | None = None
    unsafe_pickle: bool = False
    notes: tuple[str, ...] = ()
    batch_chosen: bool = False

    @property
    def quantized(self) -> bool:
        return get_precision(self.precision).quantized

    def with_output(self, default: Path) -> "ConvertOptions":
        """These options writing to ``default`` unless an output was asked for."""
        return self if self.output is not None else replace(self, output=Path(default))


def convert_options(*, target: str = DEFAULT_TARGET, precision: str = DEFAULT_PRECISION,
                    lowering: str | None = DEFAULT_LOWERING, layout: str = FLAT,
                    imgsz: str | int | tuple[int, int] = DEFAULT_IMGSZ, batch: str | int | None = DEFAULT_BATCH,
                    channels: int | None = None, calibration=None,
                    calibration_size: int = DEFAULT_CALIBRATION_SIZE, temperature: float | None = None,
                    attention_batchnorm: str | None = None, exporter: str | None = None, opset: int | None = None,
                    output: str | Path | None = None, **flags) -> ConvertOptions:
    """ConvertOptions from the arguments as given; InputError naming the option on the first bad one.
    flags: dynamic_size, simplify, verify, allow_degenerate, preprocessing, arch, unsafe_pickle, taken as
    given (ConvertOptions says what each means). lowering None: DEFAULT_LOWERING."""
    lowering = lowering or DEFAULT_LOWERING
    check_request(get_target(target), precision, layout, calibration)
    size = parse_imgsz(imgsz)
    fixed_batch = resolve_batch(batch, lowering)
    if channels is not None and channels < 1:
        raise InputError(f"--channels {channels} is not a positive count", hint="e.g. --channels 1 for grey images")
    check_count(calibration_size, MAX_CALIBRATION_SIZE, "--calibration-size", "32")
    if temperature is not None and not (math.isfinite(temperature) and temperature > 0):
        raise InputError(f"--temperature {temperature} is not a positive number",
                         hint="attention logits are divided by it, e.g. --temperature 1.0")
    AdapterOptions(attention_batchnorm)  # refuses a value other than apply or skip
    if lowering == AUTO:
        tuning_budget()  # refuses a bad $ODEXPORT_TUNING_SECONDS before the checkpoint is read
    notes = _calibration_notes(precision, calibration, calibration_size, size, channels or DEFAULT_CHANNELS)
    peak = DYNAMIC_BATCH_CHECKS[-1] if batch is None or fixed_batch is None else fixed_batch
    check_input_memory(peak, channels or DEFAULT_CHANNELS, size)
    export = export_options(exporter, opset)
    return ConvertOptions(target, precision, lowering, layout, size, fixed_batch, channels, calibration,
                          calibration_size, temperature, attention_batchnorm, export,
                          output=None if output is None else Path(output), notes=notes,
                          batch_chosen=batch is None and fixed_batch is not None and lowering == AUTO, **flags)


def resolve_batch(batch: str | int | None, lowering: str) -> int | None:
    """The artifact's fixed batch (None: dynamic) for ``batch`` as asked; not asked: AUTO_BATCH under
    `auto` (the fastest artifact), dynamic for a named lowering that exports one, else 1."""
    single = None if lowering == AUTO else get_lowering(lowering)  # refuses an unknown lowering
    if batch is None:
        return AUTO_BATCH if single is None else (None if single.dynamic_batch else 1)
    fixed_batch = parse_batch(batch)
    if fixed_batch is None and single is not None and not single.dynamic_batch:
        raise InputError(f"lowering {lowering!r} cannot export a dynamic batch",
                         hint="pass --batch N, or choose a lowering with a dynamic batch (decomposed)")
    return fixed_batch


def parse_batch(value: str | int) -> int | None:
    """"dynamic" -> None; a positive int -> that int."""
    if str(value).lower() == "dynamic":
        return None
    try:
        batch = int(value)
    except ValueError:
        batch = 0
    if batch < 1:
        raise InputError(f"batch {value!r} is not a positive int or 'dynamic'", hint="e.g. --batch 1 or --batch dynamic")
    check_count(batch, MAX_BATCH, "--batch", "1")
    return batch


def check_request(target, precision: str, layout: str, calibration) -> None:
    """Fail on a precision, layout or calibration the target cannot use, before any slow work."""
    target.check(get_precision(precision).name, layout)
    if get_precision(precision).quantized and calibration is None:
        raise InputError(f"precision {precision} needs calibration images to measure activation ranges",
                         hint="pass --calibration DIR (images like the model's inputs) or --calibration synthetic")


def _calibration_notes(precision: str, calibration, count: int, size: tuple[int, int],
                       channels: int) -> tuple[str, ...]:
    """A warning when calibration has no effect; else InputError unless the source and the samples fit."""
    if calibration is None:
        return ()
    if not get_precision(precision).quantized:
        return (f"warning: --calibration is ignored: precision {precision} is not quantized",)
    check_calibration_source(calibration, count)
    check_memory(count * channels * size[0] * size[1], SAMPLE_BYTES_PER_VALUE,
                 f"holding {count} calibration samples at {channels}x{size[0]}x{size[1]}",
                 "--calibration-size or --imgsz")
    return ()
