"""Calibration images for post-training quantization: a folder of the user's images, or synthetic ones.

Samples are preprocessed exactly as the model expects (odexport.inputs.Preprocessing), so the ranges
the quantizer measures are the ranges the deployed model sees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputError
from .inputs import IMAGENET, Preprocessing, bundled_photographs, preprocess
from .inputs import read_image as read_image_file

SYNTHETIC = "synthetic"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_CALIBRATION_SIZE = 32


def calibration_samples(source: str | Path | np.ndarray, size: tuple[int, int], *,
                        count: int = DEFAULT_CALIBRATION_SIZE, spec: Preprocessing | None = IMAGENET,
                        seed: int = 0, channels: int = 3) -> np.ndarray:
    """[N, channels, h, w] float32, N <= count.

    source: "synthetic" (seeded random crops and flips of the photographs bundled with odexport:
    real image statistics, no download), a folder of images (the first ``count`` by name), both
    preprocessed by ``spec`` (RGB or grey), or an already preprocessed array [N, channels, h, w] (from
    Python, the only source for a model whose input is not an image, ``spec`` None).
    """
    if count < 1:
        raise InputError(f"calibration size {count} is not a positive int", hint="e.g. --calibration-size 32")
    if isinstance(source, np.ndarray):
        if source.ndim != 4 or source.shape[1] != channels or tuple(source.shape[2:]) != tuple(size):
            raise InputError(f"calibration array of shape {list(source.shape)} does not match the input "
                             f"[N, {channels}, {size[0]}, {size[1]}]",
                             hint="preprocess the calibration images to the model's size")
        return np.ascontiguousarray(source[:count], dtype=np.float32)
    if spec is None:
        raise InputError(f"calibration images cannot fill a {channels}-channel input that is not an image",
                         hint="from Python, pass calibration= an array [N, C, H, W] of inputs like the model's")
    if str(source) == SYNTHETIC:
        return synthetic_samples(count, size, spec, seed)
    return np.stack([preprocess(read_image(file, "--calibration"), size, spec)
                     for file in _calibration_files(source, count)])


def check_calibration_source(source: str | Path | np.ndarray, count: int) -> None:
    """InputError, naming --calibration, unless ``source`` gives samples: the folder must exist and its
    first ``count`` images must read (before a model is loaded and exported, not after)."""
    if isinstance(source, np.ndarray) or str(source) == SYNTHETIC:
        return
    for file in _calibration_files(source, count):
        read_image(file, "--calibration")


def _calibration_files(source: str | Path, count: int) -> list[Path]:
    directory = Path(source)
    if not directory.is_dir():
        raise InputError(f"--calibration {source}: neither a folder of images nor '{SYNTHETIC}'",
                         hint="pass a folder of images like the ones the model will see, or --calibration synthetic")
    return image_files(directory, "--calibration")[:count]


def synthetic_samples(count: int, size: tuple[int, int], spec: Preprocessing = IMAGENET, seed: int = 0) -> np.ndarray:
    """Seeded random crops (a quarter to all of the shorter side) and mirror images of the bundled
    photographs, preprocessed: [count, C, h, w] float32 (C = 3, or 1 for a grey ``spec``)."""
    rng = np.random.default_rng(seed)
    photos = bundled_photographs()
    samples = []
    for index in range(count):
        photo = photos[index % len(photos)]
        height, width = photo.shape[:2]
        side = int(rng.uniform(0.25, 1.0) * min(height, width))
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        crop = photo[top:top + side, left:left + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        samples.append(preprocess(crop, size, spec))
    return np.stack(samples)


def image_files(directory: Path, option: str = "--images") -> list[Path]:
    """The image files in ``directory``, sorted by name; InputError when there are none."""
    if not directory.is_dir():
        raise InputError(f"{option} {directory}: not a directory", hint="pass a folder of .png/.jpg images")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{option} {directory}: holds no images ({', '.join(IMAGE_SUFFIXES)})",
                         hint="pass a folder of photographs like the ones the model was trained on")
    return files


def read_image(file: Path, option: str = "--images") -> np.ndarray:
    """[h, w, 3] uint8 RGB (grey images repeated, alpha dropped); InputError naming ``option`` when unreadable."""
    try:
        return read_image_file(file)
    except Exception as error:
        raise InputError(f"{option}: {file} is an unreadable image ({type(error).__name__})",
                         hint="remove or re-save it") from None
