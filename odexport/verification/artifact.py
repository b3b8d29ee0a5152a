"""What verify reads of an artifact: the model file, its manifest when there is one (checked by
odexport.manifest), and its input and output names and shapes (from the file itself, so files odexport did
not write work too)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..backends import RUNS_ON_KEY, backends_reading, model_suffixes
from ..errors import InputError
from ..inputs import IMAGENET, Preprocessing, for_channels
from ..manifest import Manifest, find_model


@dataclass(frozen=True)
class Artifact:
    """input_shape: [B, C, H, W] with None for a dynamic axis."""

    model_file: Path
    manifest: Manifest | None
    input_name: str
    input_shape: tuple[int | None, ...]
    output_names: tuple[str, ...]

    @property
    def channels(self) -> int | None:
        return self.input_shape[1]

    @property
    def eval_semantics(self) -> dict:
        """{"attention_batchnorm": "apply" | "skip" | None, "temperature": float | None} chosen at convert."""
        if self.manifest is None:
            return {}
        return {"attention_batchnorm": self.manifest.attention_batchnorm, "temperature": self.manifest.temperature}

    @property
    def precision(self) -> str | None:
        return None if self.manifest is None else self.manifest.precision

    @property
    def preprocessing(self) -> Preprocessing | None:
        """What the input expects (RGB for 3 channels, grey for 1, as convert recorded it or its default);
        None for an artifact converted as a non-image model, or with channels photographs cannot fill."""
        spec = IMAGENET if self.manifest is None else self.manifest.preprocessing
        if spec is None:
            return None
        return spec if self.channels is None else for_channels(spec, self.channels)

    @property
    def folded_batchnorms(self) -> dict[str, str]:
        """{ODConv layer path: BatchNorm path} that convert folded into the layer."""
        layers = () if self.manifest is None else self.manifest.odconv_layers
        return {layer.path: layer.folded_batchnorm for layer in layers if layer.folded_batchnorm}

    @property
    def runs_on(self) -> tuple[str, ...] | None:
        """The only runtimes that compute this file correctly (e.g. an ONNX optimised offline for ONNX
        Runtime): the model file's own metadata, else the manifest's "runs_on"; None: any that reads it."""
        return _runs_on_metadata(self.model_file) or (self.manifest.runs_on if self.manifest else None)


def _runtime_names(value) -> tuple[str, ...] | None:
    if isinstance(value, list) and value and all(isinstance(name, str) for name in value):
        return tuple(value)
    return None


def _runs_on_metadata(path: Path) -> tuple[str, ...] | None:
    try:
        return _runtime_names(json.loads(read_metadata(path)[RUNS_ON_KEY]))
    except (KeyError, ValueError):
        return None


def read_metadata(model_file: Path) -> dict[str, str]:
    """The metadata odexport wrote into the model file ({} when no backend reads it)."""
    readers = [backend.read_metadata for backend in backends_reading(model_file) if backend.read_metadata]
    return readers[0](model_file) if readers else {}


def _read_io(model_file: Path) -> tuple[list[tuple[str, tuple]], tuple[str, ...]]:
    """Input names and shapes and output names, as the file's default backend reads them."""
    return next(backend.read_io for backend in backends_reading(model_file) if backend.read_io)(model_file)


def read_artifact(path: Path) -> Artifact:
    """An output directory of convert (its manifest names the model file), or a .onnx / .xml file (with the
    manifest beside it when that lists the file). A malformed manifest is bad input naming its field."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory",
                         hint="pass a convert output directory, a .onnx or an .xml")
    if not path.is_dir() and path.suffix not in model_suffixes():
        raise InputError(f"{path}: is not a model file odexport can verify",
                         hint=f"pass a convert output directory or a file ending in {' or '.join(model_suffixes())}")
    manifest, model_file = find_model(path)
    inputs, outputs = _read_io(model_file)
    if len(inputs) != 1 or len(inputs[0][1]) != 4:
        found = ", ".join(f"{name} {list(shape)}" for name, shape in inputs) or "none"
        raise InputError(f"{model_file}: expected one input [B, C, H, W], found {found}",
                         hint="verify checks models with a single NCHW input")
    (input_name, input_shape), = inputs
    return Artifact(model_file, manifest, input_name, input_shape, outputs)
