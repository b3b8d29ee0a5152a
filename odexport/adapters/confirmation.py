"""Structure proposes, behaviour decides: an adapter claims a layer only when its description reproduces
the layer's own forward.

Every adapter whose structure a module has is tried in registration order. Its description (spec and
epilogue) runs through the reference formula (odexport.odconv.reference_forward) on seeded random inputs
at batch 1 and 2, and is compared with the module's own forward relative to the output's scale. The
first adapter whose description agrees claims the layer; a layer no adapter confirms is left
unrecognised, with each adapter's error as the reason.

An adapter with an attention BatchNorm is described twice, folded in and left out, since forks differ:
the official layer applies it, some forks keep it in the state dict and never apply it, and some skip
it at batch 1 only. Which description agrees at which batch says what the layer does.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import chain
from weakref import WeakKeyDictionary

import torch
from torch import Tensor, nn

from ..odconv import ODConvSpec, reference_forward
from .registry import Adapter, AdapterOptions, list_adapters, matching_adapters

# max |description - layer| / max |layer| below which a description reproduces the layer.
RELATIVE_TOLERANCE = {torch.float64: 1e-4, torch.float32: 1e-4}
LOW_PRECISION_TOLERANCE = 1e-2
PROBE_BATCHES = (1, 2)
# How a confirmed layer uses its attention BatchNorm.
BATCHNORM_APPLIED, BATCHNORM_UNUSED, BATCHNORM_BATCH_DEPENDENT = "applied", "unused", "batch-dependent"


@dataclass(frozen=True)
class Attempt:
    """One adapter tried on one layer.

    confirmed: True (its description reproduces the layer), False (it does not, or describing failed),
    None (not tried: an earlier adapter confirmed). error: the smallest relative error of its
    descriptions (None when none could be compared); detail: what was compared, or what failed.
    """

    adapter: str
    confirmed: bool | None
    error: float | None
    detail: str


@dataclass(frozen=True)
class Resolution:
    """What the adapters made of one module: the adapter that claims it (None when none confirmed),
    every structural match tried, and how the claimed layer uses an attention BatchNorm (None without
    one, else BATCHNORM_APPLIED, BATCHNORM_UNUSED or BATCHNORM_BATCH_DEPENDENT)."""

    adapter: Adapter | None
    attempts: tuple[Attempt, ...]
    attention_batchnorm: str | None = None
    # The confirmed adapter's descriptions {AdapterOptions.attention_batchnorm: spec}, so that using the
    # layer needs no second description.
    specs: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def matched(self) -> bool:
        return bool(self.attempts)

    @property
    def batch_dependent(self) -> bool:
        return self.attention_batchnorm == BATCHNORM_BATCH_DEPENDENT

    def options(self, asked: AdapterOptions) -> AdapterOptions:
        """The options to describe the claimed layer with: what it does, or the user's choice where its
        eval behaviour depends on the batch."""
        if self.attention_batchnorm == BATCHNORM_APPLIED:
            return AdapterOptions("apply")
        if self.attention_batchnorm == BATCHNORM_UNUSED:
            return AdapterOptions("skip")
        return asked

    def describe(self, module: nn.Module, asked: AdapterOptions) -> ODConvSpec:
        """The claimed layer's description under ``asked`` (made again only if confirmation did not)."""
        options = self.options(asked)
        known = self.specs.get(options.attention_batchnorm)
        return known if known is not None else self.adapter.describe(module, options)

    def refusal(self) -> str:
        """Why no adapter claims the module, one clause per adapter tried."""
        return "; ".join(f"{attempt.adapter}: {attempt.detail}" for attempt in self.attempts)


# Verdicts already reached, per module: a conversion asks about the same layers several times.
_VERDICTS: "WeakKeyDictionary[nn.Module, tuple[tuple, Resolution]]" = WeakKeyDictionary()


def resolve(module: nn.Module) -> Resolution:
    """Try every adapter whose structure ``module`` has, until one's description reproduces it.

    The verdict is kept while the module's parts and tensors stay the same objects, unmodified in place
    (a resolution taken from there holds no descriptions: a temperature may have changed since).
    """
    candidates = matching_adapters(module)
    if not candidates:
        return Resolution(None, ())
    fingerprint = _fingerprint(module)
    known = _VERDICTS.get(module)
    if known is not None and known[0] == fingerprint:
        return known[1]
    resolution = _resolve(module, candidates)
    _VERDICTS[module] = fingerprint, replace(resolution, specs={})
    return resolution


def _fingerprint(module: nn.Module) -> tuple:
    tensors = chain(module.parameters(), module.buffers())
    return (tuple(id(adapter) for adapter in list_adapters()), tuple(id(part) for part in module.modules()),
            tuple((id(tensor), tensor._version) for tensor in tensors))


def _resolve(module: nn.Module, candidates: list[Adapter]) -> Resolution:
    probe = _Probe(module)
    attempts: list[Attempt] = []
    for index, adapter in enumerate(candidates):
        attempt, batchnorm, specs = _confirm(adapter, module, probe)
        attempts.append(attempt)
        if attempt.confirmed:
            attempts += [Attempt(later.name, None, None, f"not tried: {adapter.name} confirmed first")
                         for later in candidates[index + 1:]]
            return Resolution(adapter, tuple(attempts), batchnorm, specs)
    return Resolution(None, tuple(attempts))


def find_adapter(module: nn.Module) -> Adapter | None:
    """The adapter whose description of ``module`` reproduces its forward, or None."""
    return resolve(module).adapter


def _tolerance(dtype: torch.dtype) -> float:
    return RELATIVE_TOLERANCE.get(dtype, LOW_PRECISION_TOLERANCE)


def _confirm(adapter: Adapter, module: nn.Module, probe: "_Probe") -> tuple[Attempt, str | None, dict]:
    """(the attempt, how the layer uses its attention BatchNorm when confirmed with one, the descriptions
    made {attention_batchnorm option: spec}).

    The description with the BatchNorm left out is made and compared only when the one with it applied
    does not agree at every batch: most layers are confirmed by one description.
    """
    has_batchnorm = _has_attention_batchnorm(adapter, module)
    modes = ("apply", "skip") if has_batchnorm else (None,)
    specs: dict[str | None, ODConvSpec] = {}
    errors: dict[tuple[str | None, int], float] = {}
    verdict = None
    for mode in modes:
        try:
            specs[mode] = adapter.describe(module, AdapterOptions(mode))
            epilogue = adapter.epilogue(module) if adapter.epilogue else None
        except Exception as error:
            return Attempt(adapter.name, False, None, f"describing the layer failed: {_said(error)}"), None, {}
        try:
            errors |= {(mode, batch): error for batch, error in probe.errors(specs[mode], epilogue).items()}
        except _ProbeFailure as failure:
            return Attempt(adapter.name, False, None, str(failure)), None, {}
        tolerance = _tolerance(specs[mode].weight.dtype)
        verdict = _verdict({key: error <= tolerance for key, error in errors.items()}, has_batchnorm)
        if verdict is not None:
            break
    if verdict is None:
        best = min(max(errors[mode, batch] for batch in PROBE_BATCHES) for mode in specs)
        return Attempt(adapter.name, False, best, _disagreement(errors, tolerance)), None, {}
    error = max(errors[mode, batch] for mode, batch in zip(_agreeing_modes(verdict, has_batchnorm), PROBE_BATCHES))
    return (Attempt(adapter.name, True, error, _agreement(verdict, has_batchnorm)),
            verdict if has_batchnorm else None, specs)


def _has_attention_batchnorm(adapter: Adapter, module: nn.Module) -> bool:
    try:
        return adapter.attention_batchnorm is not None and adapter.attention_batchnorm(module) is not None
    except Exception:  # the hook assumed a part the layer lacks: describe will say which
        return False


def _agreeing_modes(verdict: str, has_batchnorm: bool) -> tuple:
    """The description that agrees at each probed batch (batch 1, batch 2)."""
    if not has_batchnorm:
        return None, None
    return {BATCHNORM_APPLIED: ("apply", "apply"), BATCHNORM_UNUSED: ("skip", "skip"),
            BATCHNORM_BATCH_DEPENDENT: ("skip", "apply")}[verdict]


def _verdict(agrees: dict, has_batchnorm: bool) -> str | None:
    """How the layer uses its attention BatchNorm (BATCHNORM_APPLIED also for a layer without one), or
    None when the descriptions compared so far do not agree at every probed batch."""
    if not has_batchnorm:
        return BATCHNORM_APPLIED if all(agrees.values()) else None
    if agrees["apply", 1] and agrees["apply", 2]:
        return BATCHNORM_APPLIED
    if agrees.get(("skip", 1)) and agrees.get(("skip", 2)):
        return BATCHNORM_UNUSED
    if agrees.get(("skip", 1)) and agrees["apply", 2]:
        return BATCHNORM_BATCH_DEPENDENT
    return None


def _agreement(verdict: str, has_batchnorm: bool) -> str:
    if not has_batchnorm:
        return "reproduces the layer's forward"
    return {BATCHNORM_APPLIED: "reproduces the layer's forward (attention BatchNorm applied)",
            BATCHNORM_UNUSED: "reproduces the layer's forward (its attention BatchNorm is never applied)",
            BATCHNORM_BATCH_DEPENDENT: "reproduces the layer's forward (attention BatchNorm skipped at batch 1, "
                                       "applied at larger batches)"}[verdict]


def _disagreement(errors: dict, tolerance: float) -> str:
    """"relative error 0.089 at batch 1, 0.089 at batch 2 (0.84, 0.84 with the attention BatchNorm left
    out); tolerance 0.0001" """
    def at_batches(mode) -> str:
        return ", ".join(f"{errors[mode, batch]:.2g}" + (f" at batch {batch}" if mode != "skip" else "")
                         for batch in PROBE_BATCHES if (mode, batch) in errors)

    modes = {mode for mode, _ in errors}
    text = f"its description does not reproduce the layer's forward: relative error {at_batches(next(iter(errors))[0])}"
    if "skip" in modes:
        text += f" ({at_batches('skip')} with the attention BatchNorm left out)"
    return f"{text}; tolerance {tolerance:g}"


def _said(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text[:160]}" if text else type(error).__name__


class _ProbeFailure(Exception):
    """The layer could not be run on probe inputs the description implies (wrong channels, routing)."""


class _Probe:
    """The module's own outputs on seeded inputs, computed once per input shape and shared by every
    adapter tried on it."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self._outputs: dict[tuple, tuple[tuple[Tensor, ...], dict[int, Tensor]]] = {}

    def errors(self, spec: ODConvSpec, epilogue: nn.Module | None) -> dict[int, float]:
        """{batch: max |description - layer| / max |layer|} at each probed batch. The description is
        per sample, so it runs once, on the largest batch; the layer runs at each batch (it may not be)."""
        inputs, outputs = self._run(spec)
        with torch.no_grad():
            actual = reference_forward(spec, *inputs)
            if epilogue is not None:
                actual = epilogue(actual)
        return {batch: _relative_error(actual[:batch], expected) for batch, expected in outputs.items()}

    def _run(self, spec: ODConvSpec) -> tuple[tuple[Tensor, ...], dict[int, Tensor]]:
        """(inputs at the largest probed batch, {batch: the layer's output on the first ``batch`` samples})"""
        height, width = probe_size(spec)
        key = (spec.in_channels, height, width, spec.kernel_num if spec.routed else None, spec.weight.dtype)
        if key not in self._outputs:
            generator = torch.Generator().manual_seed(0)
            batch = max(PROBE_BATCHES)
            x = torch.randn(batch, spec.in_channels, height, width, generator=generator).to(spec.weight.dtype)
            inputs = (x,)
            if spec.routed:  # what a routing function gives: one weight in (0, 1) per kernel
                inputs += (torch.rand(batch, spec.kernel_num, generator=generator).to(spec.weight.dtype),)
            self._outputs[key] = inputs, {b: self._forward(tuple(t[:b] for t in inputs)) for b in PROBE_BATCHES}
        return self._outputs[key]

    def _forward(self, inputs: tuple[Tensor, ...]) -> Tensor:
        try:
            with _untouched(self.module):
                output = self.module.forward(*inputs)
        except Exception as error:
            shapes = ", ".join(str(list(t.shape)) for t in inputs)
            raise _ProbeFailure(f"the layer's forward fails on the inputs its description implies ({shapes}): "
                                f"{_said(error)}") from None
        if not isinstance(output, Tensor):
            raise _ProbeFailure(f"the layer's forward returns {type(output).__name__}, not one tensor")
        return output


def _relative_error(actual: Tensor, expected: Tensor) -> float:
    if actual.shape != expected.shape:
        raise _ProbeFailure(f"the layer returns {list(expected.shape)} where its description gives "
                            f"{list(actual.shape)}")
    difference = (actual - expected).abs().max().item()
    scale = expected.abs().max().item()
    return 0.0 if difference == 0 else difference / max(scale, torch.finfo(expected.dtype).tiny)


def probe_size(spec: ODConvSpec) -> tuple[int, int]:
    """The smallest input whose output is 2 x 3 (non-square, so that a transposed layout shows; the cost
    of the probe grows with the output positions)."""
    def one(axis: int, positions: int) -> int:
        span = spec.dilation[axis] * (spec.kernel_size - 1) + 1
        return max(2, span - 2 * spec.padding[axis] + (positions - 1) * spec.stride[axis])

    return one(0, 2), one(1, 3)


@contextmanager
def _untouched(module: nn.Module):
    """Run the module in eval mode, without gradients, leaving its train flags and the global RNG as
    they were (the caller must not see that it ran)."""
    flags = [(part, part.training) for part in module.modules()]
    module.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            yield
    finally:
        for part, training in flags:
            part.training = training
