"""verify_artifact: the artifact and PyTorch on identical inputs, per runtime; localise on failure."""

from __future__ import annotations

import copy
import hashlib
import math
import time
from pathlib import Path

import numpy as np
from torch import nn

from ..backends import ALL, Backend, Runner, build_runner, choose_runtimes, left_out_note
from ..backends.torch import TorchRunner, reference_runner
from ..console import Reporter, SilentReporter
from ..checkpoint import load_checkpoint, read_module
from ..errors import InputError, UnknownArchitectureError
from ..limits import check_input_memory, parse_imgsz
from ..localize import localize
from ..parity import ParityReport, Tolerance, check_parity, degenerate_sentence
from ..rewrite import set_temperatures
from ..scratch import scratch_directory
from .artifact import Artifact, read_artifact
from .options import batch_sizes_for, input_size_for, parse_batches, resolve_tolerance, sample_inputs
from .report import RuntimeVerification, VerifyReport


class _OncePerBatch:
    """The reference runner, run once per distinct batch: checking several runtimes costs one PyTorch pass."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.name, self.input_names, self.output_names = runner.name, runner.input_names, runner.output_names
        self.cache: dict[str, dict[str, np.ndarray]] = {}

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        key = hashlib.sha1(b"".join(f"{name}{feed[name].shape}".encode() + feed[name].tobytes()
                                    for name in sorted(feed))).hexdigest()
        if key not in self.cache:
            self.cache[key] = self.runner.infer(feed)
        return self.cache[key]


def verify_artifact(
    artifact: str | Path,
    checkpoint: str | Path | None = None,
    *,
    model: nn.Module | None = None,
    runtime: str | None = None,
    images: str | Path | None = None,
    batch_sizes: list[str | int] | tuple[int, ...] | None = None,
    imgsz: str | int | tuple[int, int] | None = None,
    precision: str | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    layers: bool = False,
    arch: str | None = None,
    unsafe_pickle: bool = False,
    allow_degenerate: bool = False,
    reporter: Reporter | None = None,
) -> VerifyReport:
    """Check ``artifact`` (a convert output directory, a .onnx or an .xml) against PyTorch: ``checkpoint``,
    loaded as convert loads it, or ``model``, an in-memory reference (e.g. a model outside the zoo).

    runtime: a registered backend's name (odexport.backends), "all", or None for the file's default.
    batch_sizes: for a dynamic batch (e.g. [1, 3] or ["1,3,8"]); a fixed batch is checked at itself.
    imgsz: for a dynamic height/width. precision: a tolerance preset; None takes the manifest's precision,
    else fp32. layers: localise even when every output passes (a failing runtime is always localised).
    allow_degenerate: accept a pass on PyTorch outputs that cannot tell a right artifact from a wrong one
    (all near zero, constant, or the same for every input: an untrained model), with a note; without it
    such a pass is an InputError. A failure stands either way: the artifact differs from PyTorch.
    Raises InputError on bad input, never on a parity failure: see VerifyReport.raise_for_failure.
    """
    reporter = reporter or SilentReporter()
    found = read_artifact(Path(artifact))
    runtimes = choose_runtimes(runtime, found.model_file, runs_on=found.runs_on)
    notes: list[str] = left_out_note(runtimes, found.model_file) if runtime == ALL and found.runs_on else []
    # The preset of the precision convert wrote the artifact in, unless told otherwise.
    tolerance = resolve_tolerance(precision or found.precision or "fp32", atol, rtol)
    sizes = batch_sizes_for(found, parse_batches(batch_sizes))
    size = input_size_for(found, parse_imgsz(imgsz) if imgsz is not None else None)
    check_input_memory(max(sizes), found.channels or 3, size)  # before the reference is loaded
    if (checkpoint is None) == (model is None):
        raise InputError("verify needs one PyTorch reference: a checkpoint, or (from Python) a model",
                         hint="pass --checkpoint with the file the artifact was converted from")

    with reporter.stage("Load", "building the PyTorch reference") as stage:
        model, reference_name = _reference(checkpoint, model, found, arch, unsafe_pickle, notes)
        stage.result = reference_name
    kinds = sample_inputs(size, found.preprocessing, None if images is None else Path(images), found.channels or 3)
    model = _with_eval_semantics(model, found, notes)
    check = _Check(found, model, np.concatenate(list(kinds.values())), sizes, size, tolerance, layers, reporter)
    with scratch_directory("verify", reporter) as work:
        results = check.every(runtimes, Path(work), skip_unloadable=runtime == ALL, notes=notes)
    _judge_degenerate(results, notes, allow_degenerate)
    return VerifyReport(
        artifact=str(artifact), model_file=str(found.model_file),
        checkpoint=None if checkpoint is None else str(checkpoint), reference=reference_name, tolerance=tolerance,
        batch_sizes=sizes, input_size=tuple(size), samples={kind: len(v) for kind, v in kinds.items()},
        runtimes=tuple(results), notes=tuple(notes))


class _Check:
    """One artifact against its PyTorch reference on fixed samples [N, C, H, W], runtime by runtime."""

    def __init__(self, found: Artifact, model: nn.Module, samples: np.ndarray, sizes: tuple[int, ...],
                 size: tuple[int, int], tolerance: Tolerance, layers: bool, reporter: Reporter) -> None:
        self.found, self.model, self.samples, self.sizes, self.size = found, model, samples, sizes, size
        self.tolerance, self.layers, self.reporter = tolerance, layers, reporter
        semantics = found.eval_semantics.get("attention_batchnorm")
        torch_runner = TorchRunner(model, (found.input_name,), found.output_names)
        self.reference = _OncePerBatch(reference_runner(torch_runner, semantics))

    def every(self, backends: list[Backend], workdir: Path, *, skip_unloadable: bool,
              notes: list[str]) -> list[RuntimeVerification]:
        """Each backend's result in turn; skip_unloadable: a backend that cannot load the file is noted and
        skipped ("all" means all that can), unless no other runtime was checked."""
        results = []
        for backend in backends:
            try:
                runner = build_runner(backend, self.found.model_file)
            except InputError as error:
                if not skip_unloadable or (backend is backends[-1] and not results):
                    raise
                notes.append(f"skipped {backend.name}: {error.message}")
                continue
            start = time.perf_counter()
            parity = self.parity(backend, runner)
            del runner  # free the session before PyTorch runs again: ONNX Runtime's idle threads spin a while
            results.append(self.localized(backend, parity, workdir, start))
        return results

    def parity(self, backend: Backend, runner: Runner) -> ParityReport:
        with self.reporter.stage("Parity", f"PyTorch vs {backend.name} at {self.size[0]}x{self.size[1]}, batch "
                                           f"{', '.join(map(str, self.sizes))}") as stage:
            parity = check_parity(self.reference, runner, [self.samples], batch_sizes=self.sizes,
                                  tolerance=self.tolerance)
            stage.result = ("PASSED " if parity.passed else "FAILED ") + parity.summary()
        if not all(math.isfinite(output.limit) for output in parity.outputs):
            raise InputError("PyTorch itself gives non-finite outputs (NaN or inf) for this model, so there is "
                             "nothing to compare against", hint="check the checkpoint's weights and BatchNorm "
                                                                "statistics")
        return parity

    def localized(self, backend: Backend, parity: ParityReport, workdir: Path, start: float) -> RuntimeVerification:
        """The runtime's result, with its layers compared when asked or failing (and the backend can)."""
        located = None
        if (self.layers or not parity.passed) and backend.exposing is not None:
            with self.reporter.stage("Layers", f"comparing module outputs in {backend.name}") as stage:
                located = localize(self.model, backend, self.found.model_file, self.samples,
                                   batch_size=self.sizes[0], tolerance=self.tolerance,
                                   input_name=self.found.input_name, workdir=workdir,
                                   folded=self.found.folded_batchnorms)
                stage.result = located.summary()
        return RuntimeVerification(backend.name, parity, located, round(time.perf_counter() - start, 3))


def _judge_degenerate(results: list[RuntimeVerification], notes: list[str], allow: bool) -> None:
    """A pass on a degenerate reference proves nothing: refuse it unless allowed (then note it)."""
    degenerate = {name: reason for result in results for name, reason in result.parity.degenerate.items()}
    if not degenerate:
        return
    sentence = degenerate_sentence(degenerate)
    if all(result.passed for result in results) and not allow:
        raise InputError(sentence, hint="verify against trained weights, or pass --allow-degenerate to accept "
                                        "the verdict anyway")
    notes.append(sentence + (" (allowed)" if allow else ""))


def _with_eval_semantics(model: nn.Module, artifact: Artifact, notes: list[str]) -> nn.Module:
    """The reference with the temperature convert set (a copy), and notes on the eval semantics followed."""
    semantics = artifact.eval_semantics
    if semantics.get("temperature") is not None:
        model = copy.deepcopy(model)
        set_temperatures(model, semantics["temperature"])
        notes.append(f"temperature {semantics['temperature']:g} set on the reference, as at conversion")
    if semantics.get("attention_batchnorm"):
        notes.append(f"attention BatchNorm {semantics['attention_batchnorm']!r} at every batch size, as at "
                     "conversion: the reference runs to match")
    return model


def _reference(checkpoint, model: nn.Module | None, artifact: Artifact, arch: str | None, unsafe_pickle: bool,
               notes: list[str]) -> tuple[nn.Module, str]:
    """The PyTorch model and a name for it; a note when the checkpoint is not the one converted."""
    if model is not None:
        return model.eval(), f"{type(model).__name__} (given in Python)"
    try:
        loaded = load_checkpoint(Path(checkpoint), arch=arch, unsafe_pickle=unsafe_pickle)
    except UnknownArchitectureError:
        # Not a zoo model: a file holding the whole module is its own reference, as convert read it.
        whole = read_module(Path(checkpoint), unsafe_pickle=unsafe_pickle)
        if whole is None or arch is not None:
            raise
        return whole, f"{type(whole).__name__} (the module {checkpoint} holds)"
    recorded = artifact.manifest.source_sha256 if artifact.manifest else None
    if recorded and recorded != loaded.sha256:
        notes.append(f"{checkpoint} is not the file this artifact was converted from (its sha256 differs "
                     f"from the manifest's)")
    return loaded.model, f"{loaded.arch}, kernel_num {loaded.kernel_num}, {loaded.num_classes} classes"
