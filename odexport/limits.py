"""The sizes a user can ask for (convert, verify and profile alike), parsed and bounded before anything is
loaded: a typo such as ``--imgsz 100000`` is refused in a second instead of after minutes of trying to
allocate 120 GB."""

from __future__ import annotations

import psutil

from .errors import InputError

MAX_SIDE = 8192  # pixels per side: far beyond what an image classifier is trained or deployed at
MAX_BATCH = 4096
MAX_CALIBRATION_SIZE = 10_000
# Bytes a forward pass holds per input value (several feature maps alive, each a few times the input).
# PyTorch alone measured 90 (MobileNetV2) to 380 (ResNet-18); export and runtimes add more: a floor.
ACTIVATION_BYTES_PER_INPUT_VALUE = 64
SAMPLE_BYTES_PER_VALUE = 4  # calibration and parity samples are float32


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


def check_side(size: tuple[int, int], option: str = "--imgsz") -> None:
    if max(size) > MAX_SIDE:
        raise InputError(f"{option} {size[0]},{size[1]} is larger than {MAX_SIDE} pixels per side",
                         hint=f"pass the size the model is deployed at, e.g. {option} 224")


def check_count(value: int, most: int, option: str, example: str) -> None:
    """InputError unless 1 <= value <= most: a count of images that can be held at once."""
    if not 1 <= value <= most:
        raise InputError(f"{option} {value} is not between 1 and {most}", hint=f"e.g. {option} {example}")


def check_memory(values: int, bytes_per_value: int, what: str, options: str) -> None:
    """InputError when ``values`` inputs at ``bytes_per_value`` cannot fit in the memory available now."""

    needed, available = values * bytes_per_value, psutil.virtual_memory().available
    if needed > available:
        raise InputError(f"{what} needs at least {_gigabytes(needed)} of memory; this machine has "
                         f"{_gigabytes(available)} available", hint=f"use a smaller {options}")


def check_input_memory(batch: int, channels: int, size: tuple[int, int], options: str = "--batch or --imgsz") -> None:
    """A forward pass on [batch, channels, *size] must fit (estimated, at least)."""
    check_memory(batch * channels * size[0] * size[1], ACTIVATION_BYTES_PER_INPUT_VALUE,
                 f"a forward pass at batch {batch}, {channels}x{size[0]}x{size[1]}", options)


def _gigabytes(count: int) -> str:
    return f"{count / 1e9:,.1f} GB"
