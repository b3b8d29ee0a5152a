"""`auto`: a per-layer choice among the registered lowerings, measured on the runtime that will run it.

Candidates are the lowerings that can be mixed within one graph (no whole-graph ONNX rewrite, so not
`custom-op`) and that fit the export: with a dynamic batch `decomposed` and, for depthwise layers,
`depthwise-taps`; with a fixed batch the run-time-kernel forms too. Each is exported as a one-layer graph
at the layer's real input shape (with a dynamic batch when the model has one: runtimes compile those
differently), timed on the target runtime at the target's precision (odexport/lowering/tuning.py), and
the fastest is kept, `decomposed` (constant weights) on a near tie. At int8 the target quantizes each
candidate before timing it, so a layer stays float, in a run-time-kernel form the quantizer leaves alone,
only where that beats its int8 form. Timings are cached per machine, so converting again measures nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol

from ..console import Reporter, SilentReporter
from ..odconv import ODConvSpec
from .depthwise_taps import is_depthwise
from .registry import Lowering, get_lowering, list_lowerings
from .tuning import LayerTiming, TimingCache, TimingContext, choose_fastest, layer_signature, time_layer

if TYPE_CHECKING:
    from ..exporters import ExportOptions

AUTO = "auto"
# In order of preference on a near tie: constant weights first (runtimes pre-pack and quantize those).
AUTO_CANDIDATES = ("decomposed", "depthwise-taps", "dynamic-weight", "folded-weight")
# Candidates that write only depthwise layers their own way (any other layer as `decomposed`).
DEPTHWISE_ONLY = ("depthwise-taps",)


class LayerLike(Protocol):
    path: str
    spec: ODConvSpec


def lowering_names() -> list[str]:
    """Every name --lowering accepts."""
    return list_lowerings() + [AUTO]


def auto_candidates(*, dynamic_batch: bool) -> list[Lowering]:
    lowerings = [get_lowering(name) for name in AUTO_CANDIDATES]
    return [lowering for lowering in lowerings if lowering.dynamic_batch or not dynamic_batch]


@dataclass
class MeasuredChooser:
    """layer -> the fastest candidate Lowering for that layer, timed at its input shape.

    input_shapes: {layer path: [B, C_in, H, W] it receives at the export size}.
    make_runner: ONNX path -> a runner of the target runtime, running it as the target's artifact at its
    precision would run (quantized first at int8).
    timings: what was measured or found cached, per layer path (for the manifest).
    """

    input_shapes: dict[str, tuple[int, ...]]
    context: TimingContext
    make_runner: Callable
    candidates: list[Lowering]
    cache: TimingCache = field(default_factory=TimingCache)
    reporter: Reporter = field(default_factory=SilentReporter)
    timings: dict[str, LayerTiming] = field(default_factory=dict)
    export_options: ExportOptions | None = None  # the timed graphs are exported as the model is
    dynamic_batch: bool = False  # the timed graphs have a dynamic batch when the model will

    def candidates_for(self, layer: LayerLike) -> list[Lowering]:
        if is_depthwise(layer.spec):
            return self.candidates
        # Elsewhere a depthwise-only form is `decomposed`: timing it again would measure nothing new.
        return [c for c in self.candidates if c.name not in DEPTHWISE_ONLY]

    def __call__(self, layer: LayerLike) -> Lowering:
        candidates = self.candidates_for(layer)
        if len(candidates) == 1:
            return candidates[0]
        shape = self.input_shapes[layer.path]
        signature = layer_signature(layer.spec, shape, dynamic_batch=self.dynamic_batch)
        timings = self.cache.get(self.context, signature)
        cached = timings is not None and all(c.name in timings for c in candidates)
        if not cached:
            timings = time_layer(layer.spec, shape, candidates, self.make_runner, self.export_options,
                                 dynamic_batch=self.dynamic_batch)
            self.cache.put(self.context, signature, timings)
            self.cache.save()  # after each layer: an interrupted conversion keeps what it measured
        timings = {c.name: timings[c.name] for c in candidates}
        choice = choose_fastest(timings, [c.name for c in candidates])
        self.timings[layer.path] = LayerTiming(signature, timings, choice, cached)
        measured = ", ".join(f"{name} {ms:.3f} ms" for name, ms in timings.items())
        self.reporter.info(f"  {layer.path} {list(shape)}: {measured} -> {choice}{' (cached)' if cached else ''}")
        return get_lowering(choice)


def layer_chooser(name: str) -> Callable[[LayerLike], Lowering]:
    """layer -> the Lowering that writes it, for one lowering's name (auto is a MeasuredChooser)."""
    lowering = get_lowering(name)
    return lambda layer: lowering
