"""The Python API: convert, verify and inspect any nn.Module with dynamic convolutions inside.

    import odexport
    result = odexport.convert(model, torch.randn(1, 3, 224, 224), target="openvino", output="exported/")
    report = odexport.verify("exported/", model, batch=[1, 8])
    found = odexport.inspect("checkpoint.pth.tar")

The CLI calls these same functions, with the same names: every keyword is the CLI option of that name
(``batch``, ``precision``, ``imgsz``...), and a checkpoint path is accepted wherever a model is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from .adapters import AdapterOptions
from .backends import FLAT
from .calibration import DEFAULT_CALIBRATION_SIZE
from .checkpoint import check_finite, load_checkpoint, read_module
from .console import Reporter
from .errors import InputError, UnknownArchitectureError
from .generic import probe_generic_path
from .input_channels import resolve_channels
from .inputs import IMAGENET, Preprocessing
from .inspection import CheckpointInspection, summarize_model, summarize_onnx
from .limits import parse_imgsz
from .manifest import stamped
from .pipeline import (DEFAULT_BATCH, DEFAULT_LOWERING, ConversionResult, ConvertOptions, convert_checkpoint,
                       convert_model, convert_options)
from .pipeline.notes import layer_record
from .renamed import renamed
from .rewrite import batch_dependent_layers, find_odconv_layers, find_unrecognised_layers
from .verification import verify_artifact


def convert(
    model: nn.Module | str | Path,
    example_input: torch.Tensor | None = None,
    *,
    target: str = "openvino",
    precision: str = "fp32",
    lowering: str = DEFAULT_LOWERING,
    output: str | Path | None = None,
    calibration=None,
    calibration_size: int = DEFAULT_CALIBRATION_SIZE,
    layout: str = FLAT,
    batch: str | int | None = DEFAULT_BATCH,
    dynamic_size: bool = False,
    simplify: bool = True,
    verify: bool = True,
    temperature: float | None = None,
    attention_batchnorm: str | None = None,
    exporter: str | None = None,
    opset: int | None = None,
    allow_degenerate: bool = False,
    preprocessing: Preprocessing | None = IMAGENET,
    imgsz: str | int | tuple[int, int] = 224,
    channels: int | None = None,
    arch: str | None = None,
    unsafe_pickle: bool = False,
    reporter: Reporter | None = None,
) -> ConversionResult:
    """Convert ``model`` (an nn.Module, or a checkpoint path) to ``target``; returns the artifact paths
    (``output_dir``, ``model_file``), the ``manifest`` and the ``parity`` report. Every option is checked
    before a checkpoint is read or a model run; odexport.pipeline.ConvertOptions says what each means.

    example_input: [B, C, H, W]; defines the input's channels and size (required for a module).
    output: the artifact directory [default: <class name or checkpoint stem>_<target>].
    preprocessing: what a 3-channel input expects (photographs join the parity inputs; in grey for a
    1-channel input); None for a model that does not take normalised images.
    channels: the input's channels, checked against the model's first convolution (read from it when
    None; 3 when it cannot be read); with an example_input, its channels.
    imgsz, arch, unsafe_pickle: for a checkpoint path only.
    Raises InputError (bad input), ParityError (outputs differ beyond the tolerance; nothing written).
    """
    _check_model_argument(model, example_input)
    options = convert_options(
        target=target, precision=precision, lowering=lowering, layout=layout, batch=batch, channels=channels,
        imgsz=_size_to_check(model, example_input, imgsz), calibration=calibration,
        calibration_size=calibration_size, temperature=temperature, attention_batchnorm=attention_batchnorm,
        exporter=exporter, opset=opset, output=output, dynamic_size=dynamic_size, simplify=simplify,
        verify=verify, allow_degenerate=allow_degenerate, preprocessing=preprocessing, arch=arch,
        unsafe_pickle=unsafe_pickle)
    if isinstance(model, (str, Path)):
        return convert_file(model, options, example_input=example_input, reporter=reporter)
    return _convert_module(model, example_input, options, reporter)


def _check_model_argument(model, example_input: torch.Tensor | None) -> None:
    if isinstance(model, (str, Path)):
        return
    if not isinstance(model, nn.Module):
        raise InputError(f"model is a {type(model).__name__}, not an nn.Module or a checkpoint path",
                         hint="pass the PyTorch module, or the path of its checkpoint")
    if example_input is None:
        raise InputError("an nn.Module needs an example input",
                         hint="e.g. odexport.convert(model, torch.randn(1, 3, 224, 224))")


def _size_to_check(model, example_input: torch.Tensor | None, imgsz):
    """The input size the options are checked at: a module's example input's, else ``imgsz``."""
    if isinstance(model, nn.Module) and example_input is not None and example_input.dim() == 4:
        return tuple(example_input.shape[2:])
    return imgsz


def convert_file(path: str | Path, options: ConvertOptions, *, example_input: torch.Tensor | None = None,
                 reporter: Reporter | None = None) -> ConversionResult:
    """Convert the checkpoint at ``path`` (or a file holding a whole module) as the checked ``options`` say:
    what ``convert`` does for a path, and what the CLI calls with the options it built."""
    path = Path(path)
    try:
        return convert_checkpoint(path, options, reporter=reporter)
    except UnknownArchitectureError:
        # Not a zoo model: a file holding the whole module is converted as that module.
        whole = read_module(path, unsafe_pickle=options.unsafe_pickle)
        if whole is None or options.arch is not None:
            raise
    if reporter is not None:
        reporter.info(f"  - {path} holds a {type(whole).__name__} outside the zoo: converting that module")
    if example_input is None:
        example_input = torch.zeros(1, resolve_channels(whole, options.channels), *options.imgsz)
    options = options.with_output(Path(f"{path.name.split('.')[0]}_{options.target}"))
    return _convert_module(whole, example_input, options, reporter)


def _convert_module(model: nn.Module, example_input: torch.Tensor, options: ConvertOptions,
                    reporter: Reporter | None) -> ConversionResult:
    check_finite(model.state_dict(), type(model).__name__)
    options = options.with_output(Path(f"{type(model).__name__.lower()}_{options.target}"))
    source = {"type": f"{type(model).__module__}.{type(model).__qualname__}", "format": "module"}
    return convert_model(model, options, example_input=example_input, reporter=reporter, source=source)


def verify(
    artifact: str | Path,
    reference: nn.Module | str | Path,
    *,
    runtime: str | None = None,
    batch: str | int | list[str | int] | tuple[int, ...] | None = None,
    imgsz: str | int | tuple[int, int] | None = None,
    precision: str | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    images: str | Path | None = None,
    layers: bool = False,
    arch: str | None = None,
    unsafe_pickle: bool = False,
    allow_degenerate: bool = False,
    reporter: Reporter | None = None,
    batch_sizes: list[str | int] | tuple[int, ...] | None = None,
):
    """Check ``artifact`` (a convert output directory, a .onnx or an .xml) against ``reference`` (an
    nn.Module, or the checkpoint it was converted from); returns a VerifyReport
    (``report.passed``, ``report.failures()``, ``report.raise_for_failure()``).

    A model converted with ``temperature=`` or ``attention_batchnorm=`` is checked the same way: the
    manifest records both and verify applies them to the reference. precision: the tolerance preset;
    None takes the manifest's precision (as the CLI does), else fp32. batch: the batch sizes for a
    dynamic-batch artifact (one, "1,3,8" or a list; default 1 and 3); batch_sizes= is its old name.
    allow_degenerate: as verify_artifact.
    """
    batch = renamed("batch_sizes", batch_sizes, "batch", batch)

    module = reference if isinstance(reference, nn.Module) else None
    checkpoint = None if module is not None else reference
    return verify_artifact(artifact, checkpoint, model=module, runtime=runtime, images=images,
                           batch_sizes=None if batch is None else [batch] if isinstance(batch, (str, int)) else batch,
                           imgsz=imgsz, precision=precision, atol=atol, rtol=rtol,
                           layers=layers, arch=arch, unsafe_pickle=unsafe_pickle,
                           allow_degenerate=allow_degenerate, reporter=reporter)


@dataclass(frozen=True)
class ModuleInspection:
    """What odexport recognised in a module: each dynamic layer with its adapter, and what it did not."""

    model: str
    params: int
    recognised: tuple[dict, ...]
    unrecognised: tuple[dict, ...]  # what convert refuses: no adapter, and the generic path cannot take it
    undecided: tuple[str, ...] = field(default_factory=tuple)  # layers needing attention_batchnorm
    generic: tuple[dict, ...] = field(default_factory=tuple)  # no adapter; convert takes the generic path

    def to_dict(self) -> dict:
        return stamped(asdict(self))


def inspect(
    model: nn.Module | str | Path,
    example_input: torch.Tensor | None = None,
    *,
    imgsz: str | int | tuple[int, int] = 224,
    arch: str | None = None,
    unsafe_pickle: bool = False,
    attention_batchnorm: str | None = None,
):
    """What ``model`` holds, as ``odexport inspect`` shows it; every result has ``to_dict()``.

    An nn.Module (or a file holding a whole one): a ModuleInspection, its dynamic convolutions as
    recognised (path, adapter, attentions, kernels, temperature kept outside the state dict; under
    "adapters", every adapter whose structure a layer has: confirmed or not, with the relative error of its
    description), those no adapter confirms that the generic path takes (``generic``), and those it
    refuses (``unrecognised``, with the reason). ``example_input`` [B, C, H, W] is what the generic path is
    probed with (its batch is not used); default [1, channels of the first convolution, *imgsz*]. A checkpoint of a zoo architecture: a
    CheckpointInspection (what was inferred from the weights, params and MACs at ``imgsz``, each ODConv
    layer). An exported .onnx: an OnnxSummary (lowering, ops, nodes per ODConv layer).
    """
    if isinstance(model, nn.Module):
        return _inspect_module(model, attention_batchnorm, example_input, imgsz)

    path = Path(model)
    if path.suffix == ".onnx":
        return summarize_onnx(path)
    size = parse_imgsz(imgsz)
    try:
        loaded = load_checkpoint(path, arch=arch, unsafe_pickle=unsafe_pickle)
    except UnknownArchitectureError:
        whole = read_module(path, unsafe_pickle=unsafe_pickle)
        if whole is None or arch is not None:
            raise
        return _inspect_module(whole, attention_batchnorm, example_input, imgsz)
    return CheckpointInspection(loaded.arch, loaded.kernel_num, loaded.reduction, loaded.num_classes,
                                loaded.source_format, loaded.sha256, tuple(loaded.inferred),
                                summarize_model(loaded.model, size))


def _inspect_module(model: nn.Module, attention_batchnorm: str | None, example_input: torch.Tensor | None,
                    imgsz: str | int | tuple[int, int]) -> ModuleInspection:
    # Listing needs no choice: an undecided batch-1 BatchNorm is listed as such and read as "apply".
    undecided = batch_dependent_layers(model) if attention_batchnorm is None else []
    layers = find_odconv_layers(model, AdapterOptions(attention_batchnorm or ("apply" if undecided else None)))
    records = []
    for layer in layers:
        record = layer_record(layer) | {"in_channels": layer.spec.in_channels, "out_channels": layer.spec.out_channels,
                                        "kernel_size": layer.spec.kernel_size, "stride": list(layer.spec.stride),
                                        "groups": layer.spec.groups}
        if layer.path in undecided:
            record["attention_batchnorm"] = None
        record["adapters"] = [asdict(attempt) for attempt in layer.attempts]
        records.append(record)
    found = find_unrecognised_layers(model)
    if found and example_input is None:
        example_input = torch.zeros(1, resolve_channels(model, None), *parse_imgsz(imgsz))
    generic, refused = probe_generic_path(model.eval(), found, example_input) if found else ([], [])
    return ModuleInspection(
        model=f"{type(model).__module__}.{type(model).__qualname__}",
        params=sum(p.numel() for p in model.parameters()),
        recognised=tuple(records),
        unrecognised=tuple(asdict(layer) for layer in refused),
        undecided=tuple(undecided),
        generic=tuple(layer.record() for layer in generic),
    )
