"""Measured per-layer lowering choice: time each candidate lowering of one ODConv layer on the runtime
that will execute it, and keep the fastest.

Why measure instead of a rule: the best form depends on the layer's shape, its input size, the runtime
and the precision (PERF-NOTES: a run-time kernel is free in OpenVINO f32 at 64 @ 56x56 and costs 2x a
static conv at 512 @ 7x7; ONNX Runtime turns over earlier; bf16 loses weight pre-packing). Timings are
cached by layer signature, runtime version, precision, threads and CPU model, so a model is measured once
per machine kind; a cached choice is reused without running anything.
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None

from ..errors import InputError
from ..export import export_onnx
from ..odconv import ODConvSpec
from ..scratch import dead_owner, process_tag, scratch_directory
from .registry import Lowering

# Bump when a candidate lowering's graph, or how it is timed, changes: its cached timings no longer describe
# it (2: decomposed's im2col from one-hot depthwise convolutions; 3: int8 candidates timed quantized).
CACHE_FORMAT = 3
# Per candidate: at least this many timed runs, then more until the budget is spent (whichever is later).
MIN_RUNS = 15
BUDGET_SECONDS = 0.4
# Overrides BUDGET_SECONDS: a shorter budget converts sooner and measures less carefully (a test suite, a
# CI job that converts throwaway models). Timings cached under either budget are reused under the other.
BUDGET_VARIABLE = "ODEXPORT_TUNING_SECONDS"


@dataclass(frozen=True)
class TimingContext:
    """Where a timing holds: the runtime (and its version), the precision it runs at, threads, CPU, and the
    exporter whose graphs were timed (the two write a layer with different ops)."""

    runtime: str
    runtime_version: str
    precision: str
    threads: int
    cpu: str
    exporter: str = "torchscript"

    def key(self) -> str:
        return f"{self.runtime}-{self.runtime_version}|{self.precision}|{self.threads}t|{self.cpu}|{self.exporter}"


def cpu_model() -> str:
    """The CPU's model name (timings from one CPU do not transfer to another)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def layer_signature(spec: ODConvSpec, input_shape: tuple[int, ...], *, dynamic_batch: bool = False) -> str:
    """Everything about a layer that changes its cost, and nothing that does not (no weight values).
    dynamic_batch: timed as a graph with a dynamic batch (a field only then: fixed-batch entries keep
    their keys)."""
    fields = {
        "input": list(input_shape),
        "out": spec.out_channels,
        "k": spec.kernel_size,
        "stride": list(spec.stride),
        "padding": list(spec.padding),
        "dilation": list(spec.dilation),
        "groups": spec.groups,
        "kernel_num": spec.kernel_num,
        "heads": list(spec.head_sizes),
        "hidden": int(spec.fc_weight.shape[0]),
        "affine": [spec.out_scale is not None, spec.out_bias is not None],
        "kernel_bias": spec.kernel_bias is not None,
        "kernel_activation": spec.kernel_activation,
        "kernel_attention": spec.kernel_attention,
    } | ({"batch": "dynamic"} if dynamic_batch else {})
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))


def default_cache_path() -> Path:
    root = os.environ.get("ODEXPORT_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "odexport"
    return Path(root) / "lowering-timings.json"


class TimingCache:
    """{context key: {layer signature: {lowering: ms}}} in one JSON file that several processes share.

    A save merges this process's new entries into what is on disk at that moment, under a lock, and
    replaces the file atomically: two conversions timing at once both keep their measurements. A miss
    re-reads the file when another process has saved since, so a layer one of them timed is not timed
    again by the other.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self.entries: dict[str, dict[str, dict[str, float]]] = {}
        self._fresh: dict[tuple[str, str], dict[str, float]] = {}  # measured here, not yet saved
        self._seen: tuple[int, int] | None = None
        self._reload()

    def get(self, context: TimingContext, signature: str) -> dict[str, float] | None:
        found = self.entries.get(context.key(), {}).get(signature)
        if found is None and self._stamp() != self._seen:
            self._reload()
            found = self.entries.get(context.key(), {}).get(signature)
        return found

    def put(self, context: TimingContext, signature: str, timings: dict[str, float]) -> None:
        self.entries.setdefault(context.key(), {})[signature] = dict(timings)
        self._fresh[context.key(), signature] = dict(timings)

    def save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with _exclusive(self.path.with_name(self.path.name + ".lock")):
                self._reload()
                _remove_abandoned_writes(self.path.parent)
                with tempfile.NamedTemporaryFile("w", dir=self.path.parent,
                                                 prefix=f"{_PARTIAL}{process_tag()}-", delete=False) as tmp:
                    json.dump({"format": CACHE_FORMAT, "timings": self.entries}, tmp, indent=1, sort_keys=True)
                os.replace(tmp.name, self.path)
                self._fresh.clear()
                self._seen = self._stamp()
        except OSError:
            pass  # a read-only home only costs re-measuring next time

    def _reload(self) -> None:
        """What is on disk, with this process's unsaved measurements on top."""
        self._seen = self._stamp()
        entries: dict[str, dict[str, dict[str, float]]] = {}
        try:
            data = json.loads(self.path.read_text())
            if data.get("format") == CACHE_FORMAT and isinstance(data.get("timings"), dict):
                entries = data["timings"]
        except (OSError, ValueError, AttributeError):
            pass  # a missing or unreadable cache only costs a re-measurement
        for (key, signature), timings in self._fresh.items():
            entries.setdefault(key, {})[signature] = timings
        self.entries = entries

    def _stamp(self) -> tuple[int, int] | None:
        try:
            status = self.path.stat()
        except OSError:
            return None
        return status.st_mtime_ns, status.st_ino


@contextmanager
def _exclusive(lock_path: Path):
    """Hold an advisory lock on ``lock_path`` (where the platform has one; elsewhere writers may race, which
    costs only re-measurement)."""
    if fcntl is None:
        yield
        return
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_PARTIAL = ".timings-"  # a cache being written: the writer's process tag follows, then a random part


def _remove_abandoned_writes(directory: Path) -> None:
    """Remove the half-written caches of runs killed while saving (named with their process tag)."""
    for path in directory.glob(f"{_PARTIAL}*"):
        if path.is_file() and not path.is_symlink() and dead_owner(path.name[len(_PARTIAL):].rpartition("-")[0]):
            path.unlink(missing_ok=True)


@dataclass(frozen=True)
class LayerTiming:
    """What `auto` measured (or found cached) for one layer, and what it chose."""

    signature: str
    timings_ms: dict[str, float]
    choice: str
    cached: bool


class RoutedProbe(nn.Module):
    """A routed layer alone, as one graph with one input: it is fed a routing computed from x.

    The routing must be a run-time tensor (a constant one would let the exporter fold the kernel
    aggregation away and flatter the run-time-weight lowerings); computing it from x keeps the graph's
    single input, and its cost (a mean over x, a Sigmoid on [B, n]) is the same for every candidate.
    """

    def __init__(self, layer: nn.Module, kernel_num: int) -> None:
        super().__init__()
        self.layer = layer
        self.register_buffer("offsets", torch.linspace(-1.0, 1.0, kernel_num))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C_in, H, W] -> [B, C_out, H_out, W_out]"""
        routing = torch.sigmoid(x.mean(dim=(1, 2, 3)).unsqueeze(1) + self.offsets)  # [B, n]
        return self.layer(x, routing)


def timing_module(spec: ODConvSpec, lowering: Lowering) -> nn.Module:
    """The one-layer module `auto` exports to time ``lowering`` on ``spec``: forward(x) -> y."""
    layer = lowering.build(spec)
    return (RoutedProbe(layer, spec.kernel_num) if spec.routed else layer).eval()


def time_layer(
    spec: ODConvSpec,
    input_shape: tuple[int, ...],
    candidates: list[Lowering],
    make_runner: Callable[[Path], object],
    export_options=None,
    *,
    dynamic_batch: bool = False,
) -> dict[str, float]:
    """Fastest ms of each candidate lowering of one layer over interleaved runs.

    Interleaving keeps the comparison fair on a busy machine (a burst of load slows every candidate
    alike), and the minimum, not the median, estimates what the layer costs on its own: other work on
    the machine only ever adds time. export_options: the exporter and opset of the conversion;
    dynamic_batch: export with a dynamic batch (timed at the given shape), as the model will be.
    """
    example = torch.zeros(*input_shape)
    feed = {"input": np.random.default_rng(0).standard_normal(input_shape, dtype=np.float32)}
    with scratch_directory("tune") as work:
        runners = {}
        for lowering in candidates:
            path = Path(work) / f"{lowering.name}.onnx"
            export_onnx(timing_module(spec, lowering), path, example, dynamic_batch=dynamic_batch,
                        finalize=lowering.finalize_onnx, options=export_options)
            runners[lowering.name] = make_runner(path)
        samples: dict[str, list[float]] = {name: [] for name in runners}
        for runner in runners.values():
            runner.infer(feed)  # first inference pays one-off compilation and allocation
        start, budget = time.perf_counter(), tuning_budget()
        while min(len(s) for s in samples.values()) < MIN_RUNS or time.perf_counter() - start < budget:
            for name, runner in runners.items():
                began = time.perf_counter()
                runner.infer(feed)
                samples[name].append((time.perf_counter() - began) * 1e3)
    return {name: min(times) for name, times in samples.items()}


def tuning_budget() -> float:
    """Seconds of interleaved runs per layer beyond the first MIN_RUNS: $ODEXPORT_TUNING_SECONDS when set,
    else BUDGET_SECONDS. InputError on a value that is not a number of seconds."""
    value = os.environ.get(BUDGET_VARIABLE)
    if value is None or value == "":
        return BUDGET_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and 0 <= seconds <= 60):
        raise InputError(f"{BUDGET_VARIABLE}={value!r} is not a number of seconds from 0 to 60",
                         hint=f"unset it for the default ({BUDGET_SECONDS} s per layer), or e.g. {BUDGET_VARIABLE}=0.1")
    return seconds


def choose_fastest(timings: dict[str, float], order: list[str]) -> str:
    """The fastest candidate; within 3% of it, the one earliest in ``order`` (the preferred form: noise
    should not flip a choice towards run-time weights)."""
    best = min(timings.values())
    return next(name for name in order if name in timings and timings[name] <= best * 1.03)
