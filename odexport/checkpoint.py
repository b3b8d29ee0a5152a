"""Load trained ODConv models from checkpoint files, and write checkpoints in the official format.

The official repository's ``main.py`` saves ``{'epoch', 'state_dict', 'acc', 'best_acc', 'optimizer'}`` with
DataParallel/DDP ``module.`` keys and no architecture name. Loading goes: read the file safely (``_read``)
→ find the state dict in what it holds (``_unwrap``) → work out architecture and hyper-parameters from key
names and shapes (:func:`infer_spec`) → build the zoo model and load the weights strictly (``_build``).
"""

from __future__ import annotations

import hashlib
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from odexport import models
from odexport.errors import CheckpointError, UnknownArchitectureError

OFFICIAL_REDUCTION = 0.0625
REDUCTION_CANDIDATES = (0.0625, 0.125, 0.25, 0.5, 1.0)
MIN_ATTENTION_CHANNELS = 16  # ODConv Attention: A = max(int(in_channels * reduction), 16)

_STATE_DICT_KEYS = ("state_dict", "model", "model_state_dict")  # where wrappers keep the weights
_WRAPPER_PREFIXES = {"module.": "DataParallel/DDP", "_orig_mod.": "torch.compile"}
_METADATA_KEYS = ("epoch", "acc", "best_acc")
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # the first pickle of torch.save's pre-1.6 format
_STORAGE_BYTES = {"DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
                  "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1,
                  "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16}  # bytes per element in the legacy format
_CLASSIFIER_KEYS = ("fc.weight", "classifier.1.weight")
_RESNET_DEPTHS = {  # (blocks per layer, block type) -> zoo name
    ((2, 2, 2, 2), "BasicBlock"): "resnet18",
    ((3, 4, 6, 3), "BasicBlock"): "resnet34",
    ((3, 4, 6, 3), "Bottleneck"): "resnet50",
    ((3, 4, 23, 3), "Bottleneck"): "resnet101",
}
_MOBILENETV2_WIDTHS = {16: "mobilenetv2_050", 24: "mobilenetv2_075", 32: "mobilenetv2_100"}  # stem channels


@dataclass(frozen=True)
class ModelSpec:
    """What to build from the zoo, and sentences saying what was inferred from the weights and how."""

    arch: str
    kernel_num: int
    reduction: float
    num_classes: int
    inferred: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A zoo model (eval mode, weights loaded strictly) and where it came from."""

    model: nn.Module
    arch: str
    kernel_num: int
    reduction: float
    num_classes: int
    source_format: str  # 'official-checkpoint' | 'state-dict' | 'torchscript' | 'pickled-module'
    sha256: str
    inferred: tuple[str, ...]
    metadata: dict  # epoch / acc / best_acc when the file has them


def save_official_checkpoint(model: nn.Module, path: str | Path, *, epoch: int = 1, acc: float = 0.0,
                             best_acc: float | None = None, data_parallel: bool = True) -> Path:
    """Write ``model`` exactly as the official ``main.py`` does: accuracies as tensors, SGD state, and
    ``module.`` keys when ``data_parallel``. ``model`` itself is left unchanged."""
    prefix = "module." if data_parallel else ""
    state = {
        "epoch": epoch,
        "state_dict": {prefix + key: value for key, value in model.state_dict().items()},
        "acc": torch.tensor(float(acc)),
        "best_acc": torch.tensor(float(acc if best_acc is None else best_acc)),
        "optimizer": _stepped_sgd_state(model),
    }
    torch.save(state, path)
    return Path(path)


def load_checkpoint(path: str | Path, *, arch: str | None = None, kernel_num: int | None = None,
                    reduction: float | None = None, num_classes: int | None = None,
                    unsafe_pickle: bool = False) -> LoadedCheckpoint:
    """Load a checkpoint into its zoo model; arguments left as None are inferred from the weights.

    Explicit arguments win over inference but must still fit the weights, else :class:`CheckpointError`.
    ``unsafe_pickle`` allows files holding pickled Python objects (runs code from the file).
    """
    path = Path(path)
    source = str(path)
    obj = _read(path, unsafe_pickle)
    state_dict, source_format, metadata, notes = _unwrap(obj, source)
    state_dict, prefix_notes = _strip_prefixes(state_dict)
    spec = infer_spec(state_dict, arch=arch, kernel_num=kernel_num, reduction=reduction,
                      num_classes=num_classes, source=source)
    return LoadedCheckpoint(
        model=_build(spec, state_dict, source), arch=spec.arch, kernel_num=spec.kernel_num,
        reduction=spec.reduction, num_classes=spec.num_classes, source_format=source_format,
        sha256=_sha256(path), inferred=(*notes, *prefix_notes, *spec.inferred), metadata=metadata)


def read_module(path: str | Path, *, unsafe_pickle: bool = False) -> nn.Module | None:
    """The module a file outside the zoo holds whole (with ``unsafe_pickle``, a pickled nn.Module), in
    eval mode; None when it holds weights only. A TorchScript archive is a CheckpointError: its forward
    is compiled code, so its dynamic convolutions cannot be found by structure nor replaced by lowerings
    (only a zoo architecture's weights can be read out of one, by load_checkpoint)."""
    obj = _read(Path(path), unsafe_pickle)
    if isinstance(obj, torch.jit.ScriptModule):
        name = getattr(obj, "original_name", type(obj).__name__)
        raise CheckpointError(
            f"{path}: is a TorchScript archive of a model outside the zoo ({name}); its forward is compiled, so "
            "odexport cannot find or rewrite the dynamic convolutions inside it",
            hint="save the nn.Module itself (torch.save(model), then --unsafe-pickle) or pass it to odexport.convert "
                 "from Python; for a zoo architecture, pass --arch or save its state_dict()")
    if not isinstance(obj, nn.Module):
        return None
    check_finite(obj.state_dict(), str(path))
    return obj.eval()


def infer_spec(state_dict: Mapping[str, torch.Tensor], *, arch: str | None = None,
               kernel_num: int | None = None, reduction: float | None = None,
               num_classes: int | None = None, source: str = "state dict") -> ModelSpec:
    """Work out the zoo architecture and hyper-parameters from key names and shapes only (so meta
    tensors work). Values given explicitly are kept as they are; ``source`` names the file in errors."""
    notes: list[str] = []
    if arch is None:
        arch, note = _infer_arch(state_dict, source)
        notes.append(note)
    elif arch not in models.list_models():
        raise UnknownArchitectureError(
            f"{source}: unknown architecture '{arch}' (known: {', '.join(models.list_models())})",
            hint="pass one of the known names, or leave the architecture out to infer it from the weights")
    widths = _attention_widths(state_dict)
    if not models.get_arch(arch).odconv:
        if kernel_num not in (None, 1):
            raise CheckpointError(f"{source}: kernel_num {kernel_num} given, but {arch} has no ODConv layers",
                                  hint="leave kernel_num out for a static model, or pass its od_ variant")
        kernel_num, reduction = 1, OFFICIAL_REDUCTION if reduction is None else reduction
    elif widths:
        if kernel_num is None:
            kernel_num, note = _infer_kernel_num(state_dict, widths, source)
            notes.append(note)
        if reduction is None:
            reduction, note = _infer_reduction(widths, source)
            notes.append(note)
    if num_classes is None:
        num_classes, note = _infer_num_classes(state_dict, source)
        notes.append(note)
    elif num_classes < 1:
        raise CheckpointError(f"{source}: num_classes {num_classes} is not a positive count",
                              hint="a classifier needs at least one class; leave num_classes out to read it")
    # An ODConv arch over weights without ODConv layers keeps the defaults; the strict check reports it.
    return ModelSpec(arch, 1 if kernel_num is None else kernel_num,
                     OFFICIAL_REDUCTION if reduction is None else reduction, num_classes, tuple(notes))


# --- reading ------------------------------------------------------------------------------------------

def _read(path: Path, unsafe_pickle: bool) -> object:
    if not path.exists():
        raise CheckpointError(f"{path}: no such file", hint="check the path to the checkpoint")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file",
                              hint="pass the file inside it, e.g. checkpoint.pth.tar or model_best.pth.tar")
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():  # TorchScript is deprecated, but these files exist and load fine
                warnings.simplefilter("ignore", DeprecationWarning)
                return torch.jit.load(str(path), map_location="cpu")
        except Exception as error:
            raise _unreadable(path, error) from error
    try:
        with warnings.catch_warnings():  # the refusal below says it better than torch's protocol warning
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        refusal = _refusal(path, error)
        if refusal is None:
            raise _unreadable(path, error) from error
    if not unsafe_pickle:
        raise CheckpointError(
            f"{path}: {refusal}",
            hint="--unsafe-pickle loads it, but that runs arbitrary code from the file: use it only for "
                 "files you trust, or re-save the model's state_dict() with torch.save")
    try:
        if _whole_pickle(path) == "plain":  # torch.load reads only what torch.save wrote
            with path.open("rb") as file:
                return pickle.load(file)
        return torch.load(path, map_location="cpu", weights_only=False)
    except (EOFError, RuntimeError) as error:  # a whole object pickle, but the tensor data after it is cut short
        raise _unreadable(path, error) from error
    except Exception as error:
        raise CheckpointError(f"{path}: unpickling failed: {_first_line(error)}",
                              hint="the classes it pickles must be importable; re-save the state_dict()") from error


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist())


def _refusal(path: Path, error: Exception) -> str | None:
    """Why the weights-only loader refused a whole file that full unpickling could read; None when
    the file itself is damaged (or not a pickle at all)."""
    pickled = _pickled_globals(path, error)
    if pickled:
        return f"contains pickled Python objects ({', '.join(pickled[:3])}), not only weights"
    kind = _whole_pickle(path)
    if kind == "plain":
        return "is a plain Python pickle (pickle.dump, not torch.save), which the weights-only loader cannot read"
    if kind == "legacy" and isinstance(error, pickle.UnpicklingError):
        return ("is a pickle in torch.save's legacy (pre-1.6) format holding data the weights-only loader "
                "refuses")
    return None


def _whole_pickle(path: Path) -> str | None:
    """"legacy" (torch.save's pre-1.6 format) or "plain" (pickle.dump) when the file holds a whole pickled
    object (and, for legacy, all its tensor data); None when it is cut short or no pickle. The pickles are
    walked by _Inert, which runs nothing from the file."""
    with path.open("rb") as file:
        if file.read(1) != b"\x80":  # protocol 2 and later, which torch.save and pickle.dump write
            return None
        file.seek(0)
        try:
            if _Inert(file).load() != _LEGACY_MAGIC:
                return "plain"
            for _ in range(2):  # the protocol version and the system information, then the saved object
                _Inert(file).load()
            saved = _Inert(file)
            saved.load()
            _Inert(file).load()  # the storage keys, in the order their data follows
        except Exception:  # cut short, or bytes that are no pickle
            return None
        data = sum(8 + numel * size for numel, size in saved.storages.values())  # an int64 count, then the bytes
        return "legacy" if path.stat().st_size - file.tell() >= data else None


class _Placeholder:
    """Stands for any object a pickle would build: accepts every construction and never runs code."""

    storage_name = ""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:
        pass

    def __setitem__(self, key, value) -> None:
        pass

    def append(self, item) -> None:
        pass

    def extend(self, items) -> None:
        pass


class _Inert(pickle.Unpickler):
    """Reads a pickle's structure without importing or calling anything it names (every global is a
    placeholder class), and keeps the legacy format's tensor storages: key -> (elements, element size)."""

    def __init__(self, file) -> None:
        super().__init__(file)
        self.storages: dict[str, tuple[int, int]] = {}

    def find_class(self, module: str, name: str) -> type:
        return type(name, (_Placeholder,), {"storage_name": name if module == "torch" else ""})

    def persistent_load(self, pid) -> _Placeholder:
        # ("storage", storage type, key, location, element count[, view metadata])
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            size = _STORAGE_BYTES.get(getattr(pid[1], "storage_name", ""), 1)  # 1: at least a byte each
            self.storages[str(pid[2])] = (int(pid[4]), size)
        return _Placeholder()


def _pickled_globals(path: Path, error: Exception) -> list[str]:
    """The Python classes/functions the file would import when unpickled ([] if it is just unreadable)."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # only zip checkpoints can be listed; the legacy format says it in the error
        names = []
    return names or re.findall(r"Unsupported global: GLOBAL ([\w.]+)", str(error))


def _unreadable(path: Path, error: Exception) -> CheckpointError:
    with path.open("rb") as file:
        head = file.read(2)
    if not head:
        return CheckpointError(f"{path}: is empty", hint="re-save or re-download the checkpoint")
    if head == b"PK" or head[:1] == b"\x80":  # zip archive (torch.save, torch.jit.save) or legacy pickle
        return CheckpointError(f"{path}: is truncated or corrupt ({type(error).__name__}: {_first_line(error)})",
                               hint="re-download or re-save it; a copy made while training wrote it is cut short")
    return CheckpointError(f"{path}: is not a PyTorch checkpoint (neither a zip archive nor a pickle)",
                           hint="pass a file written by torch.save or torch.jit.save (.pth, .pth.tar, .pt)")


def _unwrap(obj: object, source: str) -> tuple[dict, str, dict, list[str]]:
    """(state dict, source format, metadata, notes) from whatever the file held."""
    if isinstance(obj, torch.jit.ScriptModule):
        return dict(obj.state_dict()), "torchscript", {}, []
    if isinstance(obj, nn.Module):
        return dict(obj.state_dict()), "pickled-module", {}, []
    if isinstance(obj, Mapping) and _is_state_dict(obj):
        return dict(obj), "state-dict", {}, []
    if isinstance(obj, Mapping):
        metadata = {key: _plain(obj[key]) for key in _METADATA_KEYS if key in obj}
        for key in _STATE_DICT_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and _is_state_dict(inner):
                if key == "state_dict":
                    return dict(inner), "official-checkpoint", metadata, []
                return dict(inner), "state-dict", metadata, [f"weights from the checkpoint's '{key}' entry"]
        held = f"a dict with keys {_first(list(map(str, obj)))}"
    else:
        held = f"a {type(obj).__name__}"
    raise CheckpointError(f"{source}: holds {held}, and no state dict",
                          hint=f"expected a state dict or a dict with one of {', '.join(_STATE_DICT_KEYS)}")


def _is_state_dict(mapping: Mapping) -> bool:
    return bool(mapping) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in mapping.items())


def _strip_prefixes(state_dict: dict) -> tuple[dict, list[str]]:
    notes = []
    while True:  # DDP around a compiled model gives 'module._orig_mod.'
        prefix = next((p for p in _WRAPPER_PREFIXES if all(k.startswith(p) for k in state_dict)), None)
        if prefix is None:
            return state_dict, notes
        state_dict = {key[len(prefix):]: value for key, value in state_dict.items()}
        notes.append(f"stripped the '{prefix}' prefix ({_WRAPPER_PREFIXES[prefix]}) from every key")


# --- inference ----------------------------------------------------------------------------------------

def _infer_arch(state_dict: Mapping, source: str) -> tuple[str, str]:
    keys = list(state_dict)
    kind = "ODConv weights" if _attention_widths(state_dict) else "static weights"
    if {"conv1.weight", "fc.weight", "layer1.0.conv1.weight"} <= state_dict.keys():
        blocks = tuple(len({k.split(".")[1] for k in keys if k.startswith(f"layer{i}.")}) for i in range(1, 5))
        block = "Bottleneck" if any(".conv3." in k for k in keys) else "BasicBlock"
        name, why = _RESNET_DEPTHS.get((blocks, block)), f"{block} layers {list(blocks)}"
    elif {"features.0.0.weight", "classifier.1.weight"} <= state_dict.keys():
        stem = state_dict["features.0.0.weight"].shape[0]
        name, why = _MOBILENETV2_WIDTHS.get(stem), f"stem features.0.0.weight with {stem} output channels"
    else:
        raise UnknownArchitectureError(
            f"{source}: the weights match no zoo family (ResNet, MobileNetV2); first keys: {_first(keys, 5)}",
            hint="check this is an ODConv/ResNet/MobileNetV2 image classifier from the official repository")
    if name is None:
        raise UnknownArchitectureError(f"{source}: weights with {why} match no zoo model",
                                       hint=f"zoo models: {', '.join(models.list_models())}")
    name = f"od_{name}" if kind == "ODConv weights" else name
    return name, f"arch {name} ({why}, {kind})"


def _attention_widths(state_dict: Mapping) -> dict[str, tuple[int, int]]:
    """ODConv layer path -> (input channels, attention channels), from ``attention.fc.weight [A, in, 1, 1]``."""
    suffix = ".attention.fc.weight"
    return {k[:-len(suffix)]: (state_dict[k].shape[1], state_dict[k].shape[0])
            for k in state_dict if k.endswith(suffix)}


def _infer_kernel_num(state_dict: Mapping, widths: Mapping, source: str) -> tuple[int, str]:
    counts = {f"{p}.weight": state_dict[f"{p}.weight"].shape[0] for p in widths if f"{p}.weight" in state_dict}
    first = next(iter(counts), None)
    if first is None:  # attention without kernels: the strict check names the missing weights
        return 1, "kernel_num 1 (default: no ODConv kernel weights found)"
    other = next((k for k, n in counts.items() if n != counts[first]), None)
    if other is not None:
        raise CheckpointError(f"{source}: ODConv layers disagree on kernel_num: {first} has {counts[first]}, "
                              f"{other} has {counts[other]}", hint="the zoo builds one kernel_num for all layers")
    return counts[first], f"kernel_num {counts[first]} (from {first} {list(state_dict[first].shape)})"


def _infer_reduction(widths: Mapping[str, tuple[int, int]], source: str) -> tuple[float, str]:
    def fits(r: float) -> bool:
        return all(max(int(c * r), MIN_ATTENTION_CHANNELS) == a for c, a in widths.values())

    fitting = [r for r in REDUCTION_CANDIDATES if fits(r)]
    if len(fitting) == 1:
        widest = max(widths, key=lambda p: widths[p][1])
        c, a = widths[widest]
        return fitting[0], (f"reduction {fitting[0]:g} (the only standard value giving every attention width, "
                            f"e.g. {widest}.attention.fc.weight [{a}, {c}, 1, 1])")
    if fitting:  # several fit only when every layer sits at the minimum, where reduction has no effect
        chosen = OFFICIAL_REDUCTION if OFFICIAL_REDUCTION in fitting else fitting[0]
        return chosen, (f"reduction {chosen:g} (ambiguous: {', '.join(f'{r:g}' for r in fitting)} all fit because "
                        f"every ODConv layer is at the 16-channel attention minimum; the choice does not change "
                        f"the model)")
    low, high = _feasible_reductions(widths, source)
    chosen = (low + high) / 2
    if not fits(chosen):
        raise CheckpointError(f"{source}: attention widths need a reduction in [{low:.6g}, {high:.6g}), "
                              f"but {chosen:.6g} does not fit all layers", hint="pass the reduction explicitly")
    return chosen, (f"reduction {chosen:.6g} (no standard value fits the attention widths; any value in "
                    f"[{low:.6g}, {high:.6g}) does, picked the middle)")


def _feasible_reductions(widths: Mapping[str, tuple[int, int]], source: str) -> tuple[float, float]:
    """The interval [low, high) of reductions r with max(int(in * r), 16) == A for every layer."""
    for layer, (_, a) in widths.items():
        if a < MIN_ATTENTION_CHANNELS:
            raise CheckpointError(f"{source}: {layer} has {a} attention channels, below ODConv's minimum of 16",
                                  hint="this is not an ODConv layer as the official repository builds it")
    lows = {layer: 0.0 if a == MIN_ATTENTION_CHANNELS else a / c for layer, (c, a) in widths.items()}
    highs = {layer: (a + 1) / c for layer, (c, a) in widths.items()}
    low_layer, high_layer = max(lows, key=lows.get), min(highs, key=highs.get)
    if lows[low_layer] >= highs[high_layer]:
        raise CheckpointError(f"{source}: no single reduction gives every attention width: {low_layer} needs "
                              f">= {lows[low_layer]:.6g}, {high_layer} needs < {highs[high_layer]:.6g}",
                              hint="the layers were built with different reductions, which the zoo cannot build")
    return lows[low_layer], highs[high_layer]


def _infer_num_classes(state_dict: Mapping, source: str) -> tuple[int, str]:
    key = next((k for k in _CLASSIFIER_KEYS if k in state_dict), None)
    if key is None:
        return 1000, "num_classes 1000 (default: no classifier weight found)"
    shape = list(state_dict[key].shape)
    if shape[0] < 1:  # builds and exports, but every output is empty
        raise CheckpointError(f"{source}: state_dict key '{key}' {shape} is a classifier with zero classes",
                              hint="this is not a trained classifier; check the file is the right checkpoint")
    return shape[0], f"num_classes {shape[0]} (from {key} {shape})"


# --- building -----------------------------------------------------------------------------------------

def _build(spec: ModelSpec, state_dict: dict, source: str) -> nn.Module:
    model = models.create_model(spec.arch, num_classes=spec.num_classes, kernel_num=spec.kernel_num,
                                reduction=spec.reduction)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [f"{k} checkpoint {list(state_dict[k].shape)} vs model {list(v.shape)}"
              for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape]
    problems = [f"{len(items)} {what} ({_first(items)})" for what, items in
                (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)) if items]
    if problems:
        odconv = models.get_arch(spec.arch).odconv
        options = f"kernel_num {spec.kernel_num}, reduction {spec.reduction:g}, " if odconv else ""
        raise CheckpointError(
            f"{source}: weights do not fit {spec.arch} ({options}{spec.num_classes} classes): {'; '.join(problems)}",
            hint="leave out the architecture options to infer them, or pass the ones it was trained with")
    _check_dtypes(state_dict, expected, source)
    check_finite(state_dict, source)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def _check_dtypes(state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], source: str) -> None:
    """load_state_dict casts silently: integer weights would load as whole numbers (often all zeros)."""
    for key, value in state_dict.items():
        if expected[key].is_floating_point() and not value.is_floating_point():
            raise CheckpointError(
                f"{source}: state_dict key '{key}' holds {value.dtype} values where the model has "
                f"{expected[key].dtype}",
                hint="the weights were cast to integers before saving; re-save the trained model's state_dict()")


def check_finite(state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """CheckpointError naming the first tensor holding NaN or inf: no export of it can mean anything."""
    for key, value in state_dict.items():
        if (value.is_floating_point() or value.is_complex()) and not bool(torch.isfinite(value).all()):
            found = "NaN" if bool(torch.isnan(value).any()) else "inf"
            raise CheckpointError(f"{source}: state_dict key '{key}' holds {found}",
                                  hint="training diverged or the file was damaged; use an earlier checkpoint")


# --- small helpers ------------------------------------------------------------------------------------

def _stepped_sgd_state(model: nn.Module) -> dict:
    """The official SGD's state after one momentum step, taken on copies so ``model`` is untouched."""
    params = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)
    for p in params:
        p.grad = p.detach().clone()  # the gradient of 0.5 * |p|^2: deterministic and non-zero
    optimizer.step()
    return optimizer.state_dict()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _plain(value: object) -> object:
    return value.item() if isinstance(value, torch.Tensor) and value.numel() == 1 else value


def _first(items: list[str], count: int = 3) -> str:
    return ", ".join(items[:count]) + (", ..." if len(items) > count else "")


def _first_line(error: Exception) -> str:
    """The first sentence of a (torch's often paragraph-long) error message."""
    line = re.split(r"\.\s|\n", str(error).strip(), maxsplit=1)[0]
    return line if len(line) <= 120 else line[:117] + "..."
