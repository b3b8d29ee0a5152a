"""The two registries every runtime is found through: backends (what runs a model file) and targets
(what `convert` writes for a runtime). A backend module registers both for its runtime; verify, profile,
convert and calibration look them up here by name or by the model file they hold, and know no runtime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError
from ..extras import require
from ..registry import Registry
from .base import FLAT, RUNS_ON_KEY, GraphNode, NodeTime, RunOptions, Runner, WriteRequest
from .graph import TensorGraph

ALL = "all"


@dataclass(frozen=True)
class Backend:
    """One runtime, as verify and profile use it.

    reads: model file suffixes it runs; the first backend registered for a suffix is that file's default.
    runner(model_file): runs the file at the precision it was written for.
    precisions: {odexport precision: the runtime's own inference precision}, the precisions its sessions
    compute at (its one mapping; a quantized precision maps to what the float rest computes in).
    build(model_file, options, input shape): a runner with profile's options (None: ``runner``).
    graph(model_file) and exposing(model_file, tensor names, workdir) -> a runner whose outputs include
    those tensors: how verify localises a failure (None: no localisation in this runtime).
    parallel(runner, feed, seconds) -> (images/s, requests in flight); None: one request at a time.
    node_times(model_file, options, shape, feed, runs, workdir) -> (node times averaged over ``runs``, the
    executed graph to attribute them); None: no per-layer breakdown.
    quantized_convolutions(model_file): names of the convolutions running on int8 weights.
    read_io(model_file) -> ([(input name, shape with None for a dynamic axis)], output names), and
    read_metadata(model_file) -> the metadata odexport wrote into it: how verify reads a file it runs.
    target: the convert target whose artifacts it runs. in_all: whether "all" includes it (False for a
    runtime too slow for full-size models at default settings). reshapes: ``build`` compiles a file with
    dynamic dimensions at the measured input shape unless RunOptions.static_shapes is False, so a profile
    measures the file as shipped beside it; False: a session always runs the file as written.
    """

    name: str
    summary: str
    reads: tuple[str, ...]
    runner: Callable[[Path], Runner]
    precisions: dict[str, str] = field(default_factory=lambda: {"fp32": "fp32"})
    build: Callable[[Path, RunOptions, tuple[int, ...]], Runner] | None = None
    graph: Callable[[Path], TensorGraph] | None = None
    exposing: Callable[[Path, list[str], Path], Runner] | None = None
    parallel: Callable[[Runner, dict[str, np.ndarray], float], tuple[float, int]] | None = None
    node_times: Callable[[Path, RunOptions, tuple[int, ...], dict[str, np.ndarray], int, Path],
                         tuple[list[NodeTime], list[GraphNode]]] | None = None
    quantized_convolutions: Callable[[Path], list[str]] | None = None
    read_io: Callable[[Path], tuple[list[tuple[str, tuple]], tuple[str, ...]]] | None = None
    read_metadata: Callable[[Path], dict[str, str]] | None = None
    target: str = "onnx"
    in_all: bool = True
    reshapes: bool = False

    def session(self, model_file: Path, options: RunOptions, shape: tuple[int, ...]) -> Runner:
        return self.build(model_file, options, shape) if self.build else self.runner(model_file)


@dataclass(frozen=True)
class Target:
    """write(onnx_path, out_dir, request) writes the deployable files into out_dir and returns the main
    file; runner(main_file) executes it at the precision it was written for."""

    name: str
    summary: str
    write: Callable[[Path, Path, WriteRequest], Path]
    runner: Callable[[Path], Runner]
    precisions: tuple[str, ...] = ("fp32",)
    layouts: tuple[str, ...] = (FLAT,)
    # (fp32 ONNX file, precision) -> a runner that executes it as this target's artifact at that precision
    # would run; `auto` times candidate lowerings with it. None: the plain runner.
    runner_at: Callable[[Path, str], Runner] | None = None
    # precision -> the optional module (odexport.extras) writing it needs, checked before any slow work.
    needs: dict[str, str] = field(default_factory=dict)
    # The only runtimes that compute this target's files correctly (its rewrites are theirs alone); None:
    # any runtime that reads the file format.
    runs_on: tuple[str, ...] | None = None

    def metadata(self) -> dict[str, str]:
        """What the model file itself says about where it runs."""
        return {RUNS_ON_KEY: json.dumps(list(self.runs_on))} if self.runs_on else {}

    def timing_runner(self, precision: str) -> Callable[[Path], Runner]:
        if self.runner_at is None:
            return self.runner
        return lambda path: self.runner_at(path, precision)

    def check(self, precision: str, layout: str) -> None:
        """InputError unless this target writes ``precision`` in ``layout``."""
        if precision not in self.precisions:
            able = [t.name for t in TARGETS if precision in t.precisions]
            raise InputError(f"target {self.name} does not write {precision}",
                             hint=f"{self.name} writes {', '.join(self.precisions)}; "
                                  f"{precision} is written by: {', '.join(able) or 'none'}")
        if layout not in self.layouts:
            raise InputError(f"target {self.name} has no {layout!r} layout",
                             hint=f"{self.name} layouts: {', '.join(self.layouts)}")
        if precision in self.needs:
            require(self.needs[precision])


TARGETS: Registry[Target] = Registry("target")
register_target = TARGETS.register
list_targets = TARGETS.names
get_target = TARGETS.get

BACKENDS: Registry[Backend] = Registry("runtime", also=(ALL,))
register_backend = BACKENDS.register
unregister_backend = BACKENDS.unregister
list_backends = BACKENDS.names
get_backend = BACKENDS.get


def backends_reading(model_file: Path) -> list[Backend]:
    """Every backend that runs ``model_file``, its default first."""
    return [backend for backend in BACKENDS if model_file.suffix in backend.reads]


def model_suffixes() -> tuple[str, ...]:
    """Every model file suffix some backend runs."""
    return tuple(dict.fromkeys(suffix for backend in BACKENDS for suffix in backend.reads))


def precisions_run() -> tuple[str, ...]:
    """Every precision some backend's sessions compute at."""
    return tuple(dict.fromkeys(p for backend in BACKENDS for p in backend.precisions))


def choose_runtimes(choice: str | None, model_file: Path, runs_on: tuple[str, ...] | None = None) -> list[Backend]:
    """None: the file's default backend; "all": every backend that reads it (of those in "all"); else the
    one named. runs_on: the only runtimes the artifact is correct on (Artifact.runs_on); others are left
    out, and naming one is an error."""
    able = [backend for backend in backends_reading(model_file) if backend.in_all or backend.name == choice]
    if runs_on is not None:
        _check_runs_on(choice, model_file, able, runs_on)
        able = [backend for backend in able if backend.name in runs_on]
    if choice is None:
        return able[:1]
    if choice == ALL:
        return able
    chosen = get_backend(choice)
    if chosen not in able:
        raise InputError(f"{choice} cannot run {model_file.name} (it reads {', '.join(chosen.reads)})",
                         hint=f"use --runtime {' or '.join(b.name for b in able)}, or pass the artifact's .onnx")
    return [chosen]


def _check_runs_on(choice: str | None, model_file: Path, able: list[Backend], runs_on: tuple[str, ...]) -> None:
    """InputError when the runtime asked for (or every runtime that reads the file) is not one it runs on."""
    allowed = [backend.name for backend in able if backend.name in runs_on]
    refused = choice in BACKENDS and choice not in runs_on
    if refused or not allowed:
        asked = choice if refused else " or ".join(backend.name for backend in able) or "any runtime here"
        raise InputError(f"{model_file.name} is correct on {', '.join(runs_on)} only (the runs_on of its metadata "
                         f"or manifest: it was optimised offline for it); {asked} may load it but compute wrong "
                         "outputs",
                         hint=f"use --runtime {' or '.join(allowed)}" if allowed else
                         "convert with --target onnx (portable) or --target openvino for another runtime")


def left_out_note(chosen: list[Backend], model_file: Path) -> list[str]:
    """A note naming the backends that read ``model_file`` but were left out because it is not correct on
    them (empty when none were)."""
    names = {backend.name for backend in chosen}
    left = [b.name for b in backends_reading(model_file) if b.in_all and b.name not in names]
    return [f"{', '.join(left)} left out: {model_file.name} is correct on {', '.join(sorted(names))} only "
            "(its runs_on)"] if left else []


def build_runner(backend: Backend, model_file: Path) -> Runner:
    """The backend's runner; a file it cannot load is bad input, not an internal error."""
    try:
        return backend.runner(model_file)
    except InputError:
        raise
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{backend.name} cannot load {model_file}: {first[:200]}",
                         hint="check the file is complete, or try another --runtime") from error
