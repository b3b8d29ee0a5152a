"""The manifest written beside every artifact: where it came from, what it expects, how it was checked.

This module owns its format both ways: :class:`ManifestRecord` is what convert writes
(``ManifestRecord.write``), and :func:`read_manifest`, the one reader, checks every field verify, profile
and inspect use and returns them as a :class:`Manifest`."""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

from .errors import InputError
from .inputs import IMAGENET, Preprocessing
from .precisions import list_precisions


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    packages = ("odexport", "torch", "onnx", "onnxruntime", "openvino")
    return {"python": platform.python_version()} | {name: _version(name) for name in packages}


MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 2
# Beside "format" in every manifest: what tells an odexport artifact from a user's own manifest.json.
MANIFEST_PRODUCER = "odexport"

# Version of the layout of odexport's JSON reports (verify --json, profile --json, inspect --json): raised
# when a field is renamed or removed, so a reader can tell an old file from a new one.
REPORT_SCHEMA_VERSION = 1


def stamped(report: dict) -> dict:
    """``report`` with the schema version and the package versions that produced it, first."""
    return {"schema_version": REPORT_SCHEMA_VERSION, "versions": versions()} | report


# Formats this odexport reads: 2 adds "producer" and "runs_on" to 1, and nothing a reader needs.
READABLE_FORMATS = (1, 2)
MODEL_SUFFIXES = (".onnx", ".xml")  # an ONNX model, an OpenVINO IR


@dataclass(frozen=True)
class TensorRecord:
    """shape: ints, and names (or None) for dynamic axes, e.g. ["batch", 3, 224, 224]."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: str = "float32"

    def to_json(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class LayerRecord:
    """An ODConv layer convert lowered; folded_batchnorm: the path of the BatchNorm folded into it."""

    path: str
    folded_batchnorm: str | None


@dataclass(frozen=True)
class Manifest:
    """What readers (verify, profile, inspect) take from a manifest, every field checked.

    files: paths inside the artifact directory, the model file first. preprocessing: None for a model
    that does not take normalised images. checked_input_shapes: [C, H, W] of each size convert's parity
    ran at. runs_on: runtime names the artifact is meant for; None means any.
    """

    path: Path
    format: int
    files: tuple[str, ...]
    precision: str
    inputs: tuple[TensorRecord, ...]
    outputs: tuple[TensorRecord, ...]
    preprocessing: Preprocessing | None = IMAGENET
    odconv_layers: tuple[LayerRecord, ...] = ()
    attention_batchnorm: str | None = None
    temperature: float | None = None
    source_sha256: str | None = None
    checked_input_shapes: tuple[tuple[int, ...], ...] = ()
    producer: str | None = None
    runs_on: tuple[str, ...] | None = None
    target: str | None = None
    lowering: str | None = None

    def file(self, name: str) -> Path:
        return self.path.parent / name

    def summary(self) -> dict:
        """What inspect shows of it."""
        return {"format": self.format, "producer": self.producer, "target": self.target, "precision": self.precision,
                "lowering": self.lowering, "runs_on": None if self.runs_on is None else list(self.runs_on),
                "files": list(self.files), "inputs": {t.name: list(t.shape) for t in self.inputs},
                "outputs": {t.name: list(t.shape) for t in self.outputs},
                "odconv_layers": [layer.path for layer in self.odconv_layers]}


@dataclass(frozen=True)
class ManifestRecord:
    """What convert writes, field by field in the order of the file (format MANIFEST_FORMAT, marked as
    MANIFEST_PRODUCER's); read_manifest reads it back as a Manifest.

    source: where the model came from (a checkpoint's path, sha256 and format, or a module's type);
    model: what the checkpoint loader inferred, None for a module. files: inside the artifact directory,
    the model file first. eval_semantics: the attention BatchNorm choice and the temperature set.
    odconv_layers, generic_layers: one record per layer (pipeline.notes.layer_record, GenericLayer.record).
    parity: the ParityReport as a dict, None when not verified; quantization: None unless quantized.
    """

    source: dict | None
    model: dict | None
    target: str
    runs_on: tuple[str, ...] | None
    lowering: str
    export: dict
    precision: str
    layout: str
    simplified: bool
    dynamic: dict
    files: tuple[str, ...]
    eval_semantics: dict
    notes: tuple[str, ...]
    inputs: tuple[TensorRecord, ...]
    outputs: tuple[TensorRecord, ...]
    preprocessing: Preprocessing | None
    odconv_layers: tuple[dict, ...]
    generic_layers: tuple[dict, ...]
    versions: dict
    parity: dict | None
    quantization: dict | None
    format: int = MANIFEST_FORMAT
    producer: str = MANIFEST_PRODUCER

    def to_json(self) -> dict:
        """The manifest as written: format and producer first, then the fields in declaration order."""
        return {
            "format": self.format, "producer": self.producer, "source": self.source, "model": self.model,
            "target": self.target, "runs_on": None if self.runs_on is None else list(self.runs_on),
            "lowering": self.lowering, "export": self.export, "precision": self.precision, "layout": self.layout,
            "simplified": self.simplified, "dynamic": self.dynamic, "files": list(self.files),
            "eval_semantics": self.eval_semantics, "notes": list(self.notes),
            "inputs": [tensor.to_json() for tensor in self.inputs],
            "outputs": [tensor.to_json() for tensor in self.outputs],
            "preprocessing": self.preprocessing.to_dict() if self.preprocessing else None,
            "odconv_layers": list(self.odconv_layers), "generic_layers": list(self.generic_layers),
            "versions": self.versions, "parity": self.parity, "quantization": self.quantization,
        }

    def write(self, directory: Path) -> Path:
        path = Path(directory) / MANIFEST_NAME
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n")
        return path


def read_manifest(directory: Path) -> Manifest:
    """The manifest of the artifact in ``directory``, checked; InputError (exit 2) naming the field that is
    missing, of the wrong type, or a file path leading outside the directory."""
    path = Path(directory) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: unreadable ({type(error).__name__})", hint=_REWRITE) from None
    return _checked(path, data)


def find_model(path: Path) -> tuple[Manifest | None, Path]:
    """(manifest, model file) of an artifact: a convert output directory, whose manifest names the model file
    (the first .onnx or .xml it lists), or a model file, with the manifest beside it when that lists the file."""
    path = Path(path)
    if not path.is_dir():
        if not (path.parent / MANIFEST_NAME).is_file():
            return None, path
        manifest = read_manifest(path.parent)
        listed = {manifest.file(name).resolve() for name in manifest.files}
        return (manifest if path.resolve() in listed else None), path
    if not (path / MANIFEST_NAME).is_file():
        raise InputError(f"{path}: is a directory without {MANIFEST_NAME}",
                         hint="pass an output directory of odexport convert, or the model file itself")
    manifest = read_manifest(path)
    model_files = [manifest.file(name) for name in manifest.files if Path(name).suffix in MODEL_SUFFIXES]
    if not model_files:
        raise InputError(f"{manifest.path}: lists no model file ({', '.join(MODEL_SUFFIXES)})",
                         hint="the directory is not a complete odexport artifact; convert again")
    return manifest, model_files[0]


_REWRITE = "convert again to rewrite the artifact and its manifest"


@dataclass(frozen=True)
class _Kind:
    """What a JSON value must be: ``test`` it, or say ``says`` in the error; ``item``: a list's entry kind."""

    test: Callable[[object], bool]
    says: str
    item: "_Kind | None" = None


def _list_of(item: _Kind, says: str) -> _Kind:
    return _Kind(lambda v: isinstance(v, list) and all(item.test(entry) for entry in v), says, item)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


STRING = _Kind(lambda v: isinstance(v, str), "a string")
INTEGER = _Kind(_is_int, "an integer")
NUMBER = _Kind(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number")
OBJECT = _Kind(lambda v: isinstance(v, dict), "an object")
OBJECTS = _list_of(OBJECT, "a list of objects")
NUMBERS = _list_of(NUMBER, "a list of numbers")
# [C, H, W] of one input size, e.g. [3, 224, 224]
CHW = _Kind(lambda v: isinstance(v, list) and len(v) == 3 and all(_is_int(d) and d > 0 for d in v),
            "[C, H, W], three positive integers")
DIMENSIONS = _list_of(_Kind(lambda v: _is_int(v) or isinstance(v, str) or v is None, "an integer or an axis name"),
                      "a list of integers or axis names")


class _Fields:
    """Reads fields of one JSON object, raising InputError that names the manifest and the field."""

    def __init__(self, path: Path, data, where: str = "") -> None:
        self.path, self.data, self.where = path, data, where
        if not isinstance(data, dict):
            self.fail(where.rstrip(".") or "the manifest", "a JSON object", data)

    def fail(self, field: str, expected: str, found) -> None:
        raise InputError(f"{self.path}: {field} must be {expected}, found {_describe(found)}", hint=_REWRITE)

    def get(self, key: str, kind: _Kind, *, required: bool = False, nullable: bool = False):
        name = f'{self.where}"{key}"'
        if key not in self.data:
            if required:
                raise InputError(f"{self.path}: the required field {name} is missing", hint=_REWRITE)
            return None
        value = self.data[key]
        if (value is None and nullable) or (value is not None and kind.test(value)):
            return value
        if kind.item is not None and isinstance(value, list):  # name the first bad entry
            index = next(i for i, entry in enumerate(value) if not kind.item.test(entry))
            self.fail(f"{name}[{index}]", kind.item.says, value[index])
        self.fail(name, kind.says + (" or null" if nullable else ""), value)

    def object(self, key: str) -> "_Fields":
        """The fields of the object at ``key`` (absent or null: none)."""
        return _Fields(self.path, self.get(key, OBJECT, nullable=True) or {}, f'{self.where}"{key}".')


def _describe(value) -> str:
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
             int: "a number", float: "a number"}
    shown = json.dumps(value)
    kind = kinds.get(type(value), type(value).__name__)
    return kind if len(shown) > 40 else f"{kind} {shown}"


def _is_precision(name) -> bool:
    return isinstance(name, str) and name in list_precisions()


PRECISION = _Kind(_is_precision, "a string naming a precision odexport knows (fp32, fp16, bf16, int8)")


def _checked(path: Path, data) -> Manifest:
    fields = _Fields(path, data)
    format_ = fields.get("format", INTEGER, required=True)
    if format_ not in READABLE_FORMATS:
        raise InputError(f"{path}: manifest format {format_} is not one this odexport reads "
                         f"({', '.join(map(str, READABLE_FORMATS))})",
                         hint="upgrade odexport, or convert again with this version")
    files = fields.get("files", _list_of(STRING, "a list of strings"), required=True)
    runs_on = fields.get("runs_on", _list_of(STRING, "a list of runtime names"), nullable=True)
    semantics = fields.object("eval_semantics")
    checked_shapes = fields.object("parity").get("input_shapes", _list_of(CHW, "a list of [C, H, W]")) or []
    return Manifest(
        path=path, format=format_, files=tuple(_inside(path.parent, name) for name in files),
        precision=fields.get("precision", PRECISION, required=True),
        inputs=_tensors(fields, "inputs"), outputs=_tensors(fields, "outputs"),
        preprocessing=_preprocessing(fields), odconv_layers=_layers(fields),
        attention_batchnorm=semantics.get("attention_batchnorm", _Kind(lambda v: v in ("apply", "skip"),
                                                                       '"apply" or "skip"'), nullable=True),
        temperature=semantics.get("temperature", NUMBER, nullable=True),
        source_sha256=fields.object("source").get("sha256", STRING, nullable=True),
        checked_input_shapes=tuple(tuple(shape) for shape in checked_shapes),
        producer=fields.get("producer", STRING, nullable=True),
        runs_on=None if runs_on is None else tuple(runs_on),
        target=fields.get("target", STRING, nullable=True), lowering=fields.get("lowering", STRING, nullable=True),
    )


def _inside(directory: Path, name: str) -> str:
    """``name``, a path the manifest lists, when it stays inside ``directory`` once resolved (no absolute
    path, no "..", no symbolic link leading out): a manifest must not send readers to another model."""
    root = directory.resolve()
    resolved = (root / name).resolve()
    if Path(name).is_absolute() or not resolved.is_relative_to(root) or resolved == root:
        raise InputError(f"{directory / MANIFEST_NAME}: the file {name!r} it lists is outside the artifact "
                         "directory", hint="an artifact's files live in its own directory; convert again")
    return name


def _tensors(fields: _Fields, key: str) -> tuple[TensorRecord, ...]:
    records = fields.get(key, OBJECTS, required=True)
    tensors = []
    for index, record in enumerate(records):
        tensor = _Fields(fields.path, record, f'"{key}"[{index}].')
        tensors.append(TensorRecord(tensor.get("name", STRING, required=True),
                                    tuple(tensor.get("shape", DIMENSIONS, required=True)),
                                    tensor.get("dtype", STRING) or "float32"))
    return tuple(tensors)


def _preprocessing(fields: _Fields) -> Preprocessing | None:
    """Absent: ImageNet's (what convert has always recorded for an image model); null: not an image model."""
    if "preprocessing" not in fields.data:
        return IMAGENET
    if fields.get("preprocessing", OBJECT, nullable=True) is None:
        return None
    spec = fields.object("preprocessing")
    kinds = {"layout": STRING, "color": _Kind(lambda v: v in ("RGB", "L"), '"RGB" or "L"'), "scale": NUMBER,
             "resize": STRING, "mean": NUMBERS, "std": NUMBERS}
    values = {name: spec.get(name, kind) for name, kind in kinds.items()}
    result = Preprocessing(**{name: tuple(value) if isinstance(value, list) else value
                              for name, value in values.items() if value is not None})
    if len(result.mean) != len(result.std) or len(result.mean) not in (1, 3):
        spec.fail('"preprocessing"."mean" and "std"', "one value per channel (1 or 3 each)",
                  [list(result.mean), list(result.std)])
    return result


def _layers(fields: _Fields) -> tuple[LayerRecord, ...]:
    layers = []
    for index, record in enumerate(fields.get("odconv_layers", OBJECTS, nullable=True) or []):
        layer = _Fields(fields.path, record, f'"odconv_layers"[{index}].')
        layers.append(LayerRecord(layer.get("path", STRING, required=True),
                                  layer.get("folded_batchnorm", STRING, nullable=True)))
    return tuple(layers)
