"""What every backend shares, with no runtime imported: the Runner interface, the request a target writes from, the options profiling runs a session with, and a node's time.

Sessions are built once per runner and reused; verify, profile and calibration all go through runners.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..console import Reporter, SilentReporter
from ..errors import InputError
from ..inputs import batches

MODEL_STEM = "model"
FLAT = "flat"
# ONNX metadata key of the runtimes an artifact is restricted to (a JSON list), as the manifest's "runs_on".
RUNS_ON_KEY = "odexport.runs_on"
# OpenVINO's PERFORMANCE_HINT values, the ones profile offers for every runtime.
HINTS = ("latency", "throughput")


class Runner(Protocol):
    name: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class WriteRequest:
    """What a target writes: metadata (str -> str, stored in the model file), a precision name
    (odexport.precisions), calibration samples [N, 3, H, W] for a quantized precision, fed at ``batch``
    (the model's batch, 1 for a dynamic one), and a directory layout (FLAT or one the target lists)."""

    metadata: dict[str, str]
    precision: str = "fp32"
    calibration: np.ndarray | None = None
    batch: int = 1
    layout: str = FLAT
    name: str = MODEL_STEM
    input_name: str = "input"
    reporter: Reporter = field(default_factory=SilentReporter)

    def calibration_batches(self) -> list[np.ndarray]:
        if self.calibration is None:
            raise InputError(f"precision {self.precision} needs calibration images",
                             hint="pass --calibration DIR or --calibration synthetic")
        return batches(self.calibration, self.batch)


@dataclass(frozen=True)
class RunOptions:
    """How profile runs a session. precision: a name in the backend's ``precisions``; threads/streams: None
    lets the runtime choose."""

    precision: str = "fp32"
    hint: str = "latency"
    threads: int | None = None
    streams: int | None = None
    # False: compile the file with its shapes as written, as a user's code loads it, instead of at the
    # measured input shape (static kernels, as benchmark_app does), for a backend that reshapes.
    static_shapes: bool = True


@dataclass(frozen=True)
class NodeTime:
    """One timed node of a runtime: ms per inference (mean over the profiled runs)."""

    name: str
    op: str
    exec_type: str
    ms: float


# A runtime's executed graph for attributing times: (node name, input tensors, output tensors, the names of
# the original nodes it computes, itself first).
GraphNode = tuple[str, list[str], list[str], list[str]]


def timing_calibration(shape: tuple[int | None, ...], batches: int = 2) -> list[np.ndarray]:
    """Calibration for a graph that is only timed, never used (`auto` timing a candidate at an int8
    target): seeded noise at ``shape`` (a dynamic dimension, None, taken as 1). An int8 kernel runs as
    fast whatever scales calibration sets, so nothing better than noise is needed."""
    concrete = tuple(1 if size is None else size for size in shape)
    rng = np.random.default_rng(0)
    return [rng.standard_normal(concrete, dtype=np.float32) for _ in range(batches)]
