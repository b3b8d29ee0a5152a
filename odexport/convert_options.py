"""convert's options, validated once at the edge (CLI or Python API) before any checkpoint is read:
a bad value costs the user a second, not a model load and an export."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .adapters import AdapterOptions
from .calibration import check_calibration_source
from .errors import InputError
from .limits import (MAX_BATCH, MAX_CALIBRATION_SIZE, SAMPLE_BYTES_PER_VALUE, check_count, check_input_memory,
                     check_memory, check_side)
from .precisions import get_precision
from .targets import get_target

DEFAULT_CHANNELS = 3  # for the memory estimate when the model has not been read yet
# convert's defaults, chosen by measuring the artifacts as users load them (benchmarks/default.py,
# benchmarks/results/default.md): a fixed batch of 1 with every layer's form timed on the target runtime
# ran od_mobilenetv2_100 1.3-2.1x its static twin where the dynamic-batch forms ran 3.7-12x (OpenVINO
# compiles per-sample arithmetic at a dynamic batch slowly), and od_resnet18 closest to its twin too.
DEFAULT_LOWERING = "auto"
DEFAULT_BATCH = 1  # with the default lowering; --batch dynamic asks for one artifact for every batch size
DYNAMIC_BATCH_PEAK = 3  # the largest batch a dynamic-batch artifact is checked at (conversion.DYNAMIC_BATCH_CHECKS)


@dataclass(frozen=True)
class ConvertOptions:
    """What convert was asked for, every value checked. batch: an int, "dynamic", or None (see
    default_batch). notes: warnings on options that have no effect."""

    target: str
    precision: str
    lowering: str
    layout: str
    imgsz: tuple[int, int]
    batch: int | str | None
    channels: int | None
    calibration: str | Path | np.ndarray | None
    calibration_size: int
    temperature: float | None
    attention_batchnorm: str | None
    notes: tuple[str, ...] = ()


def convert_options(*, target: str, precision: str, lowering: str, layout: str,
                    imgsz: str | int | tuple[int, int], batch: str | int | None, channels: int | None,
                    calibration, calibration_size: int, temperature: float | None,
                    attention_batchnorm: str | None) -> ConvertOptions:
    """ConvertOptions from the arguments as given; InputError naming the option on the first bad one."""
    from .lowering import get_lowering
    from .lowering.auto import AUTO

    check_request(get_target(target), precision, layout, calibration)
    single = None if lowering == AUTO else get_lowering(lowering)
    size = parse_imgsz(imgsz)
    fixed_batch = None if batch is None else parse_batch(batch)
    if batch is not None and fixed_batch is None and single is not None and not single.dynamic_batch:
        raise InputError(f"lowering {lowering!r} cannot export a dynamic batch",
                         hint="pass --batch N, or choose a lowering with a dynamic batch (decomposed)")
    if channels is not None and channels < 1:
        raise InputError(f"--channels {channels} is not a positive count", hint="e.g. --channels 1 for grey images")
    check_count(calibration_size, MAX_CALIBRATION_SIZE, "--calibration-size", "32")
    if temperature is not None and not (math.isfinite(temperature) and temperature > 0):
        raise InputError(f"--temperature {temperature} is not a positive number",
                         hint="attention logits are divided by it, e.g. --temperature 1.0")
    AdapterOptions(attention_batchnorm)  # refuses a value other than apply or skip
    notes = _calibration_notes(precision, calibration, calibration_size, size, channels or DEFAULT_CHANNELS)
    check_input_memory(fixed_batch or DYNAMIC_BATCH_PEAK, channels or DEFAULT_CHANNELS, size)
    return ConvertOptions(target, precision, lowering, layout, size, batch, channels, calibration,
                          calibration_size, temperature, attention_batchnorm, notes)


def default_batch(lowering) -> int | str:
    """The batch convert writes when none is asked for: DEFAULT_BATCH under `auto` (lowering None), dynamic
    for a named lowering that allows it (the form chosen for its dynamic batch), else 1."""
    if lowering is None:
        return DEFAULT_BATCH
    return "dynamic" if lowering.dynamic_batch else 1


def default_batch_notes(asked: str | int | None, fixed_batch: int | None) -> list[str]:
    """What convert says (and the manifest keeps) when it fixed the batch without being asked to."""
    if asked is not None or fixed_batch is None:
        return []
    return [f"the batch is fixed at {fixed_batch} (the fastest artifact); pass --batch dynamic for one that "
            "serves any batch size"]


def parse_imgsz(value: str | int | tuple[int, int]) -> tuple[int, int]:
    """224 -> (224, 224); "224,160" -> (224, 160)."""
    if isinstance(value, tuple):
        size = value
    else:
        try:
            parts = [int(part) for part in str(value).replace("x", ",").split(",")]
        except ValueError:
            parts = []
        if len(parts) not in (1, 2):
            raise InputError(f"image size {value!r} is not an int or H,W", hint="e.g. --imgsz 224 or --imgsz 224,160")
        size = (parts[0], parts[-1])
    if min(size) < 8:
        raise InputError(f"image size {size} is too small", hint="use at least 8 pixels per side")
    check_side(size)
    return size


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
