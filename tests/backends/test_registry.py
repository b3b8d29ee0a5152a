"""A backend or a precision registered in one place is picked up everywhere: verify, profile and the
precision presets find it through their registries, with no other change."""

from __future__ import annotations

from pathlib import Path

import pytest

from odexport.backends import Backend, RunOptions, get_backend, list_backends, register_backend, unregister_backend
from odexport.backends.onnxruntime import OnnxRuntimeRunner
from odexport.errors import InputError
from odexport.precisions import Precision, Tolerance, get_precision, list_precisions, register_precision
from odexport.precisions import unregister_precision
from odexport.profiling import profile
from odexport.verification import verify_artifact

FLAVOUR = "onnxruntime-one-thread"


class OneThreadRunner(OnnxRuntimeRunner):
    """ONNX Runtime with one intra-op thread: a second flavour of a runtime, under its own name."""

    name = FLAVOUR

    def __init__(self, path: Path, **_options) -> None:
        super().__init__(path, threads=1)


@pytest.fixture
def one_thread_backend():
    onnxruntime = get_backend("onnxruntime")
    backend = register_backend(Backend(FLAVOUR, "ONNX Runtime, one thread", (".onnx",), OneThreadRunner,
                                       build=lambda path, options, shape: OneThreadRunner(path),
                                       graph=onnxruntime.graph, exposing=onnxruntime.exposing,
                                       node_times=onnxruntime.node_times))
    yield backend
    unregister_backend(FLAVOUR)
    assert FLAVOUR not in list_backends()


def test_verify_runs_a_registered_backend_by_name_and_in_all(one_thread_backend, tiny_artifacts, tiny_model):
    named = verify_artifact(tiny_artifacts["onnx"], model=tiny_model, runtime=FLAVOUR, layers=True)
    assert named.passed, named.failures()
    (result,) = named.runtimes
    assert result.runtime == FLAVOUR and result.layers is not None and result.layers.layers

    every = verify_artifact(tiny_artifacts["onnx"], model=tiny_model, runtime="all")
    assert [r.runtime for r in every.runtimes] == ["onnxruntime", "openvino", FLAVOUR]
    assert every.passed


def test_verify_with_a_registered_backend_still_fails_a_different_model(one_thread_backend, tiny_artifacts):
    from strategies import tiny_od_net

    report = verify_artifact(tiny_artifacts["onnx"], model=tiny_od_net(seed=1), runtime=FLAVOUR)
    assert not report.passed
    assert report.runtimes[0].layers.first_divergent is not None


def test_profile_measures_a_registered_backend_with_its_node_times(one_thread_backend, tiny_artifacts):
    report = profile(tiny_artifacts["onnx"], runtime=FLAVOUR, iterations=3, time=2.0, warmup=1, layers=True,
                     layer_runs=2)
    (run,) = report.runs
    assert run.runtime == FLAVOUR and run.latency.median_ms > 0
    assert run.layers is not None and run.layers.total_ms > 0


def test_an_unregistered_runtime_is_bad_input(tiny_artifacts, tiny_model):
    with pytest.raises(InputError, match=f"unknown runtime '{FLAVOUR}'"):
        verify_artifact(tiny_artifacts["onnx"], model=tiny_model, runtime=FLAVOUR)


@pytest.fixture
def loose_precision():
    precision = register_precision(Precision("fp32-loose", "fp32 judged loosely",
                                             Tolerance("fp32-loose", atol=1e-2, rtol=1e-2)))
    yield precision
    unregister_precision(precision.name)


def test_a_registered_precision_is_listed_and_its_preset_used_by_verify(loose_precision, tiny_artifacts, tiny_model):
    assert "fp32-loose" in list_precisions() and get_precision("fp32-loose") is loose_precision
    report = verify_artifact(tiny_artifacts["onnx"], model=tiny_model, precision="fp32-loose")
    assert report.passed and report.tolerance == loose_precision.tolerance


def test_run_options_reach_the_registered_builder(tiny_artifacts):
    """Backend.session builds with profile's options when the backend has a builder, else its runner."""
    seen = []
    backend = Backend("recording", "records the options", (".onnx",), OnnxRuntimeRunner,
                      build=lambda path, options, shape: seen.append((options, shape)) or OnnxRuntimeRunner(path))
    model_file = tiny_artifacts["onnx"] / "model.onnx"
    runner = backend.session(model_file, RunOptions("fp32", threads=1), (1, 3, 32, 32))
    assert seen == [(RunOptions("fp32", threads=1), (1, 3, 32, 32))] and runner.output_names
    plain = Backend("plain", "no builder", (".onnx",), OnnxRuntimeRunner)
    assert plain.session(model_file, RunOptions(), (1, 3, 32, 32)).output_names == runner.output_names
