"""profile measures an artifact optimised offline for ONNX Runtime in ONNX Runtime only: "all" means the
runtimes it runs on, and naming another is bad input."""

from __future__ import annotations

import pytest

from conftest import QUICK
from odexport.errors import InputError
from odexport.profiling import profile


def test_all_runtimes_means_the_ones_it_runs_on(tiny_onnxruntime_artifact):
    report = profile(tiny_onnxruntime_artifact, runtime="all", **QUICK)
    assert [run.key for run in report.runs] == ["onnxruntime fp32 b1"]
    assert report.runs[0].latency.median_ms > 0
    assert any(note.startswith("openvino left out") for note in report.notes), report.notes


@pytest.mark.parametrize("given", ["directory", "onnx file"])
def test_naming_another_runtime_is_refused_with_the_reason(tiny_onnxruntime_artifact, given):
    source = tiny_onnxruntime_artifact if given == "directory" else tiny_onnxruntime_artifact / "model.onnx"
    with pytest.raises(InputError) as caught:
        profile(source, runtime="openvino", **QUICK)
    assert caught.value.exit_code == 2 and "onnxruntime only" in caught.value.message
