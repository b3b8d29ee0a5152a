"""Measuring configurations: build a runner (compile time, first call, peak memory), then time single
calls within an iteration and time budget, optionally in several rounds interleaved with other
configurations so that a shared machine's changing load falls on all of them alike."""

from __future__ import annotations

import functools
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from ..backends import Backend, RunOptions
from ..backends.torch import TorchRunner
from .layers import LayerBreakdown, breakdown, places
from .result import RunProfile
from .stats import LatencyStats, PeakMemory


# Rounds the static and the as-shipped session alternate in: a change in load falls on both alike.
SHIPPED_ROUNDS = 4

@dataclass(frozen=True)
class Budget:
    """Timed calls per configuration: up to ``iterations`` and up to ``seconds``, but at least
    ``min_iterations``; ``warmup`` untimed calls first. layer_runs: profiled calls for the per-layer
    breakdown (0: none)."""

    iterations: int = 200
    seconds: float = 10.0
    warmup: int = 5
    min_iterations: int = 5
    layer_runs: int = 0

    def share(self, rounds: int) -> "Budget":
        """The budget of one of ``rounds`` interleaved rounds."""
        return Budget(max(1, -(-self.iterations // rounds)), self.seconds / rounds, self.warmup,
                      max(1, -(-self.min_iterations // rounds)), self.layer_runs)


def seeded_input(shape: tuple[int, ...]) -> np.ndarray:
    """shape: [B, C, H, W] -> float32 values like a normalised image's."""
    return np.random.default_rng(0).standard_normal(shape, dtype=np.float32)


def timed_calls(call: Callable[[], object], budget: Budget, *, warmup: bool = True) -> list[float]:
    """Seconds per call of ``call``, after budget.warmup untimed calls."""
    for _ in range(budget.warmup if warmup else 0):
        call()
    durations: list[float] = []
    deadline = time.perf_counter() + budget.seconds
    while len(durations) < budget.iterations and (len(durations) < budget.min_iterations
                                                  or time.perf_counter() < deadline):
        start = time.perf_counter()
        call()
        durations.append(time.perf_counter() - start)
    return durations


class Session:
    """One configuration, built: its runner, the one-off numbers, and the timed calls collected so far."""

    def __init__(self, label: str, runtime: str, precision: str, options: RunOptions, shape: tuple[int, ...],
                 build: Callable[[], object], threads_around: Callable[[], object] | None = None) -> None:
        self.label, self.runtime_name, self.precision, self.options, self.shape = label, runtime, precision, options, shape
        self.durations: list[float] = []
        self.warmed = False
        with PeakMemory() as memory:
            start = time.perf_counter()
            self.runner = build()
            self.compile_ms = (time.perf_counter() - start) * 1e3
            self.feed = {self.runner.input_names[0]: seeded_input(shape)}
            start = time.perf_counter()
            self.runner.infer(self.feed)
            self.first_ms = (time.perf_counter() - start) * 1e3
            self.peak_mib, self.memory_exact = memory.growth_mib(), memory.exact

    def call(self) -> None:
        self.runner.infer(self.feed)

    def time(self, budget: Budget) -> None:
        self.durations += timed_calls(self.call, budget, warmup=not self.warmed)
        self.warmed = True

    def result(self, throughput: tuple[float, int] | None = None, layers=None) -> RunProfile:
        latency = LatencyStats.from_seconds(self.durations)
        images, requests = throughput or (self.shape[0] * 1e3 / latency.mean_ms, 1)
        return RunProfile(self.label, self.runtime_name, self.precision, self.options.hint, self.options.threads,
                          self.options.streams, self.shape[0], tuple(self.shape), self.compile_ms, self.first_ms,
                          latency, images, requests, self.peak_mib, self.memory_exact, layers)

    def close(self) -> None:
        # ONNX Runtime's idle threads spin for a while; let them go before the next configuration runs.
        del self.runner


class TorchSession(Session):
    """PyTorch eager in fp32, with ``threads`` intra-op threads while it runs (restored afterwards)."""

    def __init__(self, label: str, model: nn.Module, threads: int | None, shape: tuple[int, ...]) -> None:
        self.threads = threads
        with self._threads():
            super().__init__(label, "pytorch", "fp32", RunOptions("fp32", "latency", threads), shape,
                             lambda: TorchRunner(model.eval(), ("input",), ("output",)))

    @contextmanager
    def _threads(self) -> Iterator[None]:
        previous = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    def time(self, budget: Budget) -> None:
        with self._threads():
            super().time(budget)


def runtime_session(label: str, runtime: Backend, model_file: Path, options: RunOptions,
                    shape: tuple[int, ...]) -> Session:
    return Session(label, runtime.name, options.precision, options, shape,
                   lambda: runtime.session(model_file, options, shape))


def layer_breakdown(runtime: Backend, model_file: Path, options: RunOptions, shape: tuple[int, ...],
                    feed: dict[str, np.ndarray], runs: int, workdir: Path, odconv_layers: list[str]) -> LayerBreakdown:
    nodes, graph = runtime.node_times(model_file, options, shape, feed, runs, workdir)
    return breakdown(runtime.name, runs, nodes, places(graph), odconv_layers)


def measure_runtime(label: str, runtime: Backend, model_file: Path, options: RunOptions,
                    shape: tuple[int, ...], budget: Budget, *, odconv_layers: list[str] = (),
                    workdir: Path | None = None) -> RunProfile:
    """``model_file`` in ``runtime`` at input ``shape`` ([B, C, H, W]), alone; where the runtime compiles a
    dynamic-shape file at ``shape``, also the file as shipped, the two timed in alternating rounds."""
    session = runtime_session(label, runtime, model_file, options, shape)
    shipped = None
    if runtime.reshapes and options.static_shapes and _has_dynamic_input(runtime, model_file):
        shipped = runtime_session(label, runtime, model_file, replace(options, static_shapes=False), shape)
        interleaved([session, shipped], budget, SHIPPED_ROUNDS)
        shipped.close()
    else:
        session.time(budget)
    throughput = None
    if options.hint == "throughput" and runtime.parallel is not None:
        throughput = runtime.parallel(session.runner, session.feed, min(budget.seconds, 5.0))
    feed = session.feed
    session.close()
    layers = None
    if budget.layer_runs and workdir is not None and runtime.node_times is not None:
        layers = layer_breakdown(runtime, model_file, options, shape, feed, budget.layer_runs, workdir,
                                 list(odconv_layers))
    result = session.result(throughput, layers)
    if shipped is None:
        return result
    return replace(result, shipped_latency=LatencyStats.from_seconds(shipped.durations),
                   shipped_compile_ms=shipped.compile_ms)


def _has_dynamic_input(runtime: Backend, model_file: Path) -> bool:
    if runtime.read_io is None:
        return False
    return _reads_dynamic_input(runtime.read_io, Path(model_file), Path(model_file).stat().st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _reads_dynamic_input(read_io, model_file: Path, modified_ns: int) -> bool:
    """Read once per file (and version of it), not once per precision and batch profiled."""
    inputs, _ = read_io(model_file)
    return any(dim is None for _, dims in inputs for dim in dims)


def interleaved(sessions: list[Session], budget: Budget, rounds: int) -> list[RunProfile]:
    """Time ``sessions`` in ``rounds`` rounds, each taking its share of ``budget`` in turn (calls timed
    before are dropped: a re-measurement replaces them)."""
    share = budget.share(rounds)
    for session in sessions:
        session.durations = []
    for _ in range(rounds):
        for session in sessions:
            session.time(share)
    return [session.result() for session in sessions]
