"""Name the first layer where an artifact stops computing what PyTorch computes.

PyTorch forward hooks record every module's output; the artifact is run with the matching tensors added
to its outputs (see :mod:`odexport.graph` for how a module path finds its tensor). Layers are compared in
the order PyTorch finishes them, each against a tolerance relative to its own largest magnitude (the
formula of the output check), so the first failure is where the divergence starts, not where it shows.
When no layer is broken and rounding error only accumulates, the first layer past its limit may be one
that shrinks the range (a ReLU6 after a large convolution): there the error figures grow gradually.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from .backends.base import Runner
from .backends.graph import TensorGraph
from .inputs import batches
from .parity import Tolerance
from .rewrite import find_following_batchnorms, odconv_layer_paths


class ExposingRuntime(Protocol):
    """What localisation needs of a runtime: the artifact's tensors as it names them, and a runner that
    also returns chosen intermediate tensors (built in ``workdir``)."""

    name: str

    def graph(self, model_file: Path) -> TensorGraph: ...

    def exposing(self, model_file: Path, tensors: list[str], workdir: Path) -> Runner: ...


@dataclass(frozen=True)
class LayerParity:
    """One module's output in the artifact against PyTorch's.

    reference: the module whose PyTorch output was compared; a BatchNorm folded into ``path`` (by convert,
    or by the exporter for a plain convolution) when the artifact has no tensor of its own for it.
    shape: [B, ...] of one batch.
    """

    path: str
    tensor: str
    reference: str
    shape: tuple[int, ...]
    max_abs_error: float
    mean_abs_error: float
    max_rel_error: float  # max abs error / max |reference|
    limit: float
    passed: bool


@dataclass(frozen=True)
class Localization:
    """modules: modules that PyTorch runs once per forward (outside ODConv internals), the candidates.
    layers: the checked ones, in execution order. skipped: why the others were not checked."""

    runtime: str
    modules: int
    layers: tuple[LayerParity, ...] = ()
    skipped: dict[str, int] = field(default_factory=dict)
    error: str | None = None  # set when the artifact could not be run with extra outputs

    @property
    def checked(self) -> int:
        return len(self.layers)

    @property
    def first_divergent(self) -> LayerParity | None:
        return next((layer for layer in self.layers if not layer.passed), None)

    def to_dict(self) -> dict:
        first = self.first_divergent
        return asdict(self) | {"checked": self.checked, "first_divergent": asdict(first) if first else None}

    def summary(self) -> str:
        if self.error:
            return f"layers not checked: {self.error}"
        coverage = f"{self.checked} of {self.modules} modules checked"
        first = self.first_divergent
        if first is None:
            return f"{coverage}; none diverges"
        via = "" if first.reference == first.path else f" (vs {first.reference}, folded into it)"
        return (f"{coverage}; first divergent layer: {first.path}{via}, max abs error {first.max_abs_error:.3g} "
                f"> limit {first.limit:.3g}")


class _Running:
    """Error figures of one tensor accumulated over batches."""

    def __init__(self) -> None:
        self.max_error = self.sum_error = self.max_reference = 0.0
        self.count = 0
        self.finite = True
        self.shape: tuple[int, ...] = ()

    def add(self, reference: np.ndarray, candidate: np.ndarray) -> None:
        error = np.abs(candidate.astype(np.float64) - reference.astype(np.float64))
        self.finite &= bool(np.isfinite(candidate).all())
        self.max_error = max(self.max_error, float(error.max(initial=0.0)))
        self.sum_error += float(error.sum())
        self.count += error.size
        self.max_reference = max(self.max_reference, float(np.abs(reference).max(initial=0.0)))
        self.shape = tuple(reference.shape)

    def result(self, path: str, tensor: str, reference: str, tolerance: Tolerance) -> LayerParity:
        limit = tolerance.atol + tolerance.rtol * self.max_reference
        return LayerParity(path, tensor, reference, self.shape, self.max_error, self.sum_error / max(self.count, 1),
                           self.max_error / (self.max_reference or 1.0), limit,
                           self.finite and self.max_error <= limit)


class _Recorder:
    """Forward hooks on ``paths``: per forward, how often each module ran, whether its output is a tensor,
    and a copy of the last output of the modules in ``keep`` (a later in-place op may overwrite it)."""

    def __init__(self, model: nn.Module, paths: list[str], keep: set[str]) -> None:
        self.keep = keep
        self.outputs: dict[str, np.ndarray] = {}
        self.calls: dict[str, int] = {}
        self.tensors: set[str] = set()
        self.order: list[str] = []
        modules = dict(model.named_modules())
        self.handles = [modules[path].register_forward_hook(self._hook(path)) for path in paths]

    def _hook(self, path: str):
        def record(_module, _inputs, output) -> None:
            self.calls[path] = self.calls.get(path, 0) + 1
            if path not in self.order:
                self.order.append(path)
            if isinstance(output, torch.Tensor):
                self.tensors.add(path)
                if path in self.keep:
                    self.outputs[path] = output.detach().numpy().copy()

        return record

    @torch.no_grad()
    def run(self, model: nn.Module, batch: np.ndarray) -> None:
        self.outputs, self.calls = {}, {}
        model(torch.from_numpy(batch))

    def ran_once(self, path: str) -> bool:
        return self.calls.get(path) == 1 and path in self.tensors

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def candidate_modules(model: nn.Module) -> list[str]:
    """Every named module except the root and the inside of ODConv layers: the lowering rewrites those,
    so equal names there need not mean equal computations."""
    odconv = odconv_layer_paths(model)
    return [path for path, _ in model.named_modules()
            if path and not any(path.startswith(f"{layer}.") for layer in odconv if layer)]


def folded_pairs(model: nn.Module, candidates: list[str]) -> dict[str, str]:
    """{convolution path: the BatchNorm reading only its output}: convert folds these into ODConv layers,
    and the ONNX exporter folds them into plain convolutions."""
    odconv = set(odconv_layer_paths(model))
    modules = dict(model.named_modules())
    convolutions = [p for p in candidates if p in odconv or isinstance(modules[p], nn.modules.conv._ConvNd)]
    return find_following_batchnorms(model, convolutions) if convolutions else {}


def localize(
    model: nn.Module,
    runtime: ExposingRuntime,
    model_file: Path,
    samples: np.ndarray,
    *,
    batch_size: int,
    tolerance: Tolerance,
    input_name: str,
    workdir: Path,
    folded: dict[str, str] | None = None,
) -> Localization:
    """Compare every module's output that the artifact exposes, on ``samples`` ([N, C, H, W]) in batches of
    ``batch_size``. ``folded``: {layer path: BatchNorm path} folded by convert (from the manifest)."""
    model = model.eval()
    candidates = candidate_modules(model)
    graph = runtime.graph(model_file)
    tensors = {path: graph.module_output(path) for path in candidates}
    compared_with = _compared_with(tensors, folded_pairs(model, candidates) | (folded or {}))
    folded_away = {bn for layer, bn in compared_with.items() if bn != layer}
    skipped: dict[str, int] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    recorder = _Recorder(model, candidates, keep={p for p in candidates if tensors[p]} | set(compared_with.values()))
    try:
        work = batches(samples, batch_size)
        recorder.run(model, work[0])
        once = [p for p in recorder.order if recorder.ran_once(p)]
        checked = _checkable(recorder, candidates, once, tensors, compared_with, folded_away, skip)
        try:
            runner = runtime.exposing(model_file, sorted({tensors[p] for p in checked}), workdir)
        except Exception as error:  # the verdict stands without localisation; say why it is missing
            return Localization(runtime.name, len(once), (), skipped, f"{type(error).__name__}: {error}")
        running = {path: _Running() for path in checked}
        for index, batch in enumerate(work):
            if index:
                recorder.run(model, batch)
            produced = runner.infer({input_name: batch})
            for path in list(running):
                found = _lookup(produced, graph.names.get(tensors[path], (tensors[path],)))
                expected = recorder.outputs[compared_with[path]]
                if found is None or found.shape != expected.shape:
                    del running[path]
                    skip("artifact tensor has another shape")
                else:
                    running[path].add(expected, found)
    finally:
        recorder.close()
    layers = tuple(running[p].result(p, tensors[p], compared_with[p], tolerance) for p in checked if p in running)
    return Localization(runtime.name, len(once), layers, dict(sorted(skipped.items())))


def _checkable(recorder: "_Recorder", candidates: list[str], once: list[str], tensors: dict[str, str | None],
               compared_with: dict[str, str], folded_away: set[str], skip) -> list[str]:
    """The modules whose output can be compared with an artifact tensor, in execution order; ``skip(reason)``
    is told why each other candidate is not."""
    for path in candidates:
        if path not in recorder.calls:
            skip("does not run")
        elif recorder.calls[path] > 1:
            skip("runs more than once per forward")
        elif path not in recorder.tensors:
            skip("output is not a tensor")
    checked = []
    for path in once:
        if path in folded_away:
            skip("folded into the layer before it")
        elif tensors[path] is None:
            skip("no tensor in the artifact")
        elif not recorder.ran_once(compared_with[path]):
            skip("folded BatchNorm runs more than once")
        else:
            checked.append(path)
    return checked


def _compared_with(tensors: dict[str, str | None], pairs: dict[str, str]) -> dict[str, str]:
    """{module: the module whose PyTorch output its tensor holds}. A folded BatchNorm leaves no tensor of
    its own: the layer it was folded into holds the BatchNorm's output."""
    compared = {path: path for path in tensors}
    for layer, batchnorm in pairs.items():
        if layer in compared and batchnorm in tensors and tensors[batchnorm] is None:
            compared[layer] = batchnorm
    return compared


def _lookup(outputs: dict[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray | None:
    """A runner names an output by any one of the tensor's names."""
    return next((outputs[name] for name in names if name in outputs), None)
