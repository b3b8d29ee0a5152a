"""verify's choices, from what the user asked and what the artifact allows: batch sizes, input size,
tolerance, and the inputs themselves."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..calibration import image_files, read_image
from ..errors import InputError
from ..inputs import Preprocessing, photographs, preprocess, random_inputs, spec_channels
from ..limits import MAX_BATCH, check_count
from ..precisions import Tolerance, tolerance_presets
from .artifact import Artifact

# A dynamic batch is checked at 1 and at a size neither 1 nor a power of two, unless told otherwise.
DEFAULT_BATCHES = (1, 3)
DEFAULT_SIZE = (224, 224)
RANDOM_SAMPLES = 2


def parse_batches(values: list[str | int] | tuple | None) -> tuple[int, ...] | None:
    """["1", "3,8"] -> (1, 3, 8); None or empty stays None (the artifact decides)."""
    if not values:
        return None
    sizes: list[int] = []
    for value in values:
        for part in str(value).split(","):
            size = int(part) if part.strip().isdigit() else 0
            if size < 1:
                raise InputError(f"batch size {part!r} is not a positive int",
                                 hint="e.g. --batch 1 --batch 3, or --batch 1,3,8")
            check_count(size, MAX_BATCH, "--batch", "1")
            if size not in sizes:
                sizes.append(size)
    return tuple(sizes)


def resolve_tolerance(precision: str, atol: float | None = None, rtol: float | None = None) -> Tolerance:
    """A precision's tolerance preset (odexport.precisions), with atol/rtol replaced when given."""
    presets = tolerance_presets()
    if precision not in presets:
        raise InputError(f"unknown precision {precision!r}",
                         hint=f"presets: {', '.join(presets)}; or pass --atol/--rtol")
    preset = presets[precision]
    for name, value in (("atol", atol), ("rtol", rtol)):
        if value is not None and not (value >= 0 and math.isfinite(value)):
            raise InputError(f"--{name} {value} is not a non-negative number", hint=f"e.g. --{name} 1e-4")
    if atol is None and rtol is None:
        return preset
    return replace(preset, name=f"{preset.name}+custom", atol=preset.atol if atol is None else atol,
                   rtol=preset.rtol if rtol is None else rtol)


def batch_sizes_for(artifact: Artifact, asked: tuple[int, ...] | None) -> tuple[int, ...]:
    fixed = artifact.input_shape[0]
    if fixed is None:
        return asked or DEFAULT_BATCHES
    if asked and set(asked) != {fixed}:
        raise InputError(f"{artifact.model_file.name} has a fixed batch of {fixed}; cannot check batch "
                         f"{', '.join(map(str, asked))}", hint=f"leave --batch out, or pass --batch {fixed}")
    return (fixed,)


def input_size_for(artifact: Artifact, asked: tuple[int, int] | None) -> tuple[int, int]:
    height, width = artifact.input_shape[2:]
    if height is not None and width is not None:
        if asked and asked != (height, width):
            raise InputError(f"{artifact.model_file.name} takes {height}x{width} inputs; cannot check "
                             f"{asked[0]}x{asked[1]}", hint="leave --imgsz out for an artifact with a fixed input size")
        return height, width
    if asked:
        return asked
    checked = artifact.manifest.checked_input_shapes if artifact.manifest else ()
    return tuple(checked[0][-2:]) if checked else DEFAULT_SIZE  # the size convert checked it at


def sample_inputs(size: tuple[int, int], spec: Preprocessing | None, images: Path | None,
                  channels: int = 3) -> dict[str, np.ndarray]:
    """{kind: [N, C, h, w] float32}: the bundled photographs and the user's images (for a model taking
    normalised images, ``spec``: RGB, or grey for 1 channel), and seeded random inputs."""
    if spec is None or spec_channels(spec) != channels:
        if images is not None:
            raise InputError("--images needs a model that takes images (3 or 1 channels and a preprocessing)",
                             hint="leave --images out; random inputs are used for this model")
        return {"random": random_inputs(RANDOM_SAMPLES + 4, size, channels=channels)}
    kinds = {"photographs": photographs(size, spec), "random": random_inputs(RANDOM_SAMPLES, size, channels=channels)}
    if images is not None:
        kinds["images"] = load_images(Path(images), size, spec)
    return kinds


def load_images(directory: Path, size: tuple[int, int], spec: Preprocessing, option: str = "--images") -> np.ndarray:
    """Every image file in ``directory`` (sorted by name), preprocessed: [N, C, h, w] float32 (C as ``spec``
    says). ``option`` names where the folder came from in errors."""
    return np.stack([preprocess(read_image(file, option), size, spec) for file in image_files(directory, option)])
