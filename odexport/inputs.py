"""Inputs for parity checks: real photographs shipped with odexport (odexport/data), and seeded random
tensors; images are read with Pillow."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

# Photographs shipped in odexport/data (licences in LICENSE.md there): no download at run time.
PHOTOGRAPHS = ("astronaut", "coffee", "chelsea", "rocket")


@dataclass(frozen=True)
class Preprocessing:
    """What a model expects of its input; recorded in every manifest."""

    layout: str = "NCHW"
    color: str = "RGB"
    scale: float = 1 / 255
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)  # one per channel: 3 for RGB, 1 for grey ("L")
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    resize: str = "shorter side to size/0.875, then center crop"

    def to_dict(self) -> dict:
        return asdict(self)


IMAGENET = Preprocessing()
# Luma weights of ITU-R BT.601: how a grey-input model's photographs are made from RGB ones.
LUMA = (0.299, 0.587, 0.114)


def for_channels(spec: Preprocessing | None, channels: int) -> Preprocessing | None:
    """``spec`` as an input of ``channels`` channels expects it: itself for 3; for 1, the same photographs
    in grey (BT.601 luma) normalised with the mean of the RGB means and stds; None (random inputs only)
    for any other count, which photographs cannot fill."""
    if spec is None or len(spec.mean) == channels:
        return spec
    if channels == 1 and spec.color == "RGB":
        return replace(spec, color="L", mean=(sum(spec.mean) / 3,), std=(sum(spec.std) / 3,))
    return None


def spec_channels(spec: Preprocessing) -> int:
    """The channels an input preprocessed by ``spec`` has."""
    return len(spec.mean)


def preprocess(image: np.ndarray, size: tuple[int, int], spec: Preprocessing = IMAGENET) -> np.ndarray:
    """image: [H, W, 3] uint8 RGB -> [C, h, w] float32 (C = 3, or 1 for a grey ``spec``), resized and
    normalised as ``spec`` says."""
    height, width = size
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() * spec.scale
    if spec.color == "L":
        tensor = (tensor * torch.tensor(LUMA).reshape(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    scale = max(height, width) / 0.875 / min(tensor.shape[-2:])
    resized_size = (max(height, round(tensor.shape[-2] * scale)), max(width, round(tensor.shape[-1] * scale)))
    tensor = F.interpolate(tensor, size=resized_size, mode="bilinear", antialias=True, align_corners=False)
    top = (resized_size[0] - height) // 2
    left = (resized_size[1] - width) // 2
    tensor = tensor[..., top:top + height, left:left + width]
    mean = torch.tensor(spec.mean).reshape(1, -1, 1, 1)
    std = torch.tensor(spec.std).reshape(1, -1, 1, 1)
    return ((tensor - mean) / std)[0].numpy().astype(np.float32)


def read_image(path: str | Path) -> np.ndarray:
    """An image file as [H, W, 3] uint8 RGB: grey is repeated, alpha dropped, 16-bit scaled to 8.
    Raises OSError/ValueError for a file Pillow cannot read."""
    from PIL import Image  # lazy: only reading image files needs Pillow

    with Image.open(path) as image:
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            # Pillow's own conversion clips these to 255 instead of rescaling.
            grey = np.asarray(image, dtype=np.float64)
            peak = 65535.0 if image.mode.startswith("I;16") or grey.max() > 255 else 255.0
            image = Image.fromarray(np.round(grey / peak * 255).astype(np.uint8))
        return np.array(image.convert("RGB"), dtype=np.uint8)  # a writable copy, as torch.from_numpy wants


@cache
def bundled_photographs() -> tuple[np.ndarray, ...]:
    """The photographs shipped with odexport: [H, W, 3] uint8 RGB each, in PHOTOGRAPHS order."""
    data = resources.files(__package__) / "data"
    photos = []
    for name in PHOTOGRAPHS:
        with resources.as_file(data / f"{name}.jpg") as path:
            photos.append(read_image(path))
    return tuple(photos)


def photographs(size: tuple[int, int], spec: Preprocessing = IMAGENET) -> np.ndarray:
    """The bundled photographs, preprocessed: [N, C, h, w] float32 (C as ``spec`` says)."""
    return np.stack([preprocess(photo, size, spec) for photo in bundled_photographs()])


def random_inputs(count: int, size: tuple[int, int], seed: int = 0, *, channels: int = 3) -> np.ndarray:
    """Seeded standard-normal inputs, the scale of normalised images: [count, channels, h, w] float32."""
    return np.random.default_rng(seed).standard_normal((count, channels, *size), dtype=np.float32)


def parity_inputs(size: tuple[int, int], *, random_count: int = 2, seed: int = 0, channels: int = 3,
                  preprocessing: Preprocessing | None = IMAGENET) -> np.ndarray:
    """Photographs (only where they fit: a preprocessing for ``channels``, see for_channels) followed by
    random inputs: [N, channels, h, w] float32. Without photographs, as many more random inputs make up
    the count."""
    if preprocessing is not None and spec_channels(preprocessing) == channels:
        return np.concatenate([photographs(size, preprocessing),
                               random_inputs(random_count, size, seed, channels=channels)])
    return random_inputs(random_count + len(PHOTOGRAPHS), size, seed, channels=channels)


def batches(samples: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Split ``samples`` into batches of exactly ``batch_size``, cycling samples to fill the last one."""
    count = -(-len(samples) // batch_size) * batch_size
    indices = np.arange(count) % len(samples)
    return [samples[indices[i:i + batch_size]] for i in range(0, count, batch_size)]
