"""What verify reads of an artifact: the model file, its manifest when there is one (checked by
odexport.manifest), and its input and output names and shapes (from the file itself, so files odexport did
not write work too)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

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
    if path.suffix != ".onnx":
        return None
    import onnx

    from ..targets import RUNS_ON_KEY

    props = {prop.key: prop.value for prop in onnx.load(str(path), load_external_data=False).metadata_props}
    try:
        return _runtime_names(json.loads(props[RUNS_ON_KEY]))
    except (KeyError, ValueError):
        return None


def _onnx_io(path: Path) -> tuple[list[tuple[str, tuple]], tuple[str, ...]]:
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as error:
        raise InputError(f"{path}: not a readable ONNX file ({type(error).__name__})",
                         hint="pass a .onnx written by odexport convert or torch.onnx.export") from None
    weights = {init.name for init in graph.initializer}  # old exports list initializers as inputs
    inputs = [(i.name, tuple(d.dim_value or None for d in i.type.tensor_type.shape.dim))
              for i in graph.input if i.name not in weights]
    return inputs, tuple(o.name for o in graph.output)


def _openvino_io(path: Path) -> tuple[list[tuple[str, tuple]], tuple[str, ...]]:
    import openvino as ov

    if not path.with_suffix(".bin").is_file():
        raise InputError(f"{path}: the weights file {path.with_suffix('.bin').name} is missing beside it",
                         hint="keep the .xml and .bin of an OpenVINO IR together")
    try:
        model = ov.Core().read_model(str(path))
    except Exception as error:
        raise InputError(f"{path}: not a readable OpenVINO IR ({type(error).__name__})",
                         hint="pass a model.xml written by odexport convert or openvino.save_model") from None
    inputs = [(port.get_any_name(), tuple(None if d.is_dynamic else d.get_length() for d in port.get_partial_shape()))
              for port in model.inputs]
    return inputs, tuple(port.get_any_name() for port in model.outputs)


# How each model file format tells its input and output names and shapes.
_FORMATS = {".onnx": _onnx_io, ".xml": _openvino_io}


def read_artifact(path: Path) -> Artifact:
    """An output directory of convert (its manifest names the model file), or a .onnx / .xml file (with the
    manifest beside it when that lists the file). A malformed manifest is bad input naming its field."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory",
                         hint="pass a convert output directory, a .onnx or an .xml")
    if not path.is_dir() and path.suffix not in _FORMATS:
        raise InputError(f"{path}: is not a model file odexport can verify",
                         hint=f"pass a convert output directory or a file ending in {' or '.join(_FORMATS)}")
    manifest, model_file = find_model(path)
    inputs, outputs = _FORMATS[model_file.suffix](model_file)
    if len(inputs) != 1 or len(inputs[0][1]) != 4:
        found = ", ".join(f"{name} {list(shape)}" for name, shape in inputs) or "none"
        raise InputError(f"{model_file}: expected one input [B, C, H, W], found {found}",
                         hint="verify checks models with a single NCHW input")
    (input_name, input_shape), = inputs
    return Artifact(model_file, manifest, input_name, input_shape, outputs)
