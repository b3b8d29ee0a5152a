"""Measuring one configuration: build the runner, time the first call, warm up, time single calls within
an iteration and time budget, then throughput, peak memory and (optionally) per-layer times."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..runners import TorchRunner
from .result import RunProfile
from .runtimes import ProfilingRuntime, RunOptions, layer_breakdown
from .stats import LatencyStats, PeakMemory


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


def seeded_input(shape: tuple[int, ...]) -> np.ndarray:
    """shape: [B, 3, H, W] -> float32 values like a normalised image's."""
    return np.random.default_rng(0).standard_normal(shape, dtype=np.float32)


def timed_calls(call: Callable[[], object], budget: Budget) -> list[float]:
    """Seconds per call of ``call`` after budget.warmup untimed calls."""
    for _ in range(budget.warmup):
        call()
    durations: list[float] = []
    deadline = time.perf_counter() + budget.seconds
    while len(durations) < budget.iterations and (len(durations) < budget.min_iterations
                                                  or time.perf_counter() < deadline):
        start = time.perf_counter()
        call()
        durations.append(time.perf_counter() - start)
    return durations


def measure_runtime(label: str, runtime: ProfilingRuntime, model_file: Path, options: RunOptions,
                    shape: tuple[int, ...], budget: Budget, *, odconv_layers: list[str] = (),
                    workdir: Path | None = None) -> RunProfile:
    """``model_file`` in ``runtime`` at input ``shape`` ([B, 3, H, W])."""
    data = seeded_input(shape)
    with PeakMemory() as memory:
        start = time.perf_counter()
        runner = runtime.build(model_file, options, shape)
        compile_ms = (time.perf_counter() - start) * 1e3
        feed = {runner.input_names[0]: data}
        start = time.perf_counter()
        runner.infer(feed)
        first_ms = (time.perf_counter() - start) * 1e3
        latency = LatencyStats.from_seconds(timed_calls(lambda: runner.infer(feed), budget))
        throughput, requests = shape[0] * 1e3 / latency.mean_ms, 1
        if options.hint == "throughput" and runtime.parallel is not None:
            throughput, requests = runtime.parallel(runner, feed, min(budget.seconds, 5.0))
        peak = memory.growth_mib()
    del runner  # ONNX Runtime's idle threads spin for a while; let them go before the next configuration
    layers = None
    if budget.layer_runs and workdir is not None:
        layers = layer_breakdown(runtime, model_file, options, shape, feed, budget.layer_runs, workdir,
                                 list(odconv_layers))
    return RunProfile(label, runtime.name, options.precision, options.hint, options.threads, options.streams,
                      shape[0], tuple(shape), compile_ms, first_ms, latency, throughput, requests, peak,
                      memory.exact, layers)


def measure_torch(label: str, model: nn.Module, threads: int | None, shape: tuple[int, ...],
                  budget: Budget) -> RunProfile:
    """PyTorch eager in fp32 with ``threads`` intra-op threads (restored afterwards)."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        feed = {"input": seeded_input(shape)}
        with PeakMemory() as memory:
            runner = TorchRunner(model.eval(), ("input",), ("output",))
            start = time.perf_counter()
            runner.infer(feed)
            first_ms = (time.perf_counter() - start) * 1e3
            latency = LatencyStats.from_seconds(timed_calls(lambda: runner.infer(feed), budget))
            peak = memory.growth_mib()
    finally:
        torch.set_num_threads(previous)
    return RunProfile(label, "pytorch", "fp32", "latency", threads, None, shape[0], tuple(shape), 0.0, first_ms,
                      latency, shape[0] * 1e3 / latency.mean_ms, 1, peak, memory.exact)
