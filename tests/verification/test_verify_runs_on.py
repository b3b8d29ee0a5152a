"""An artifact optimised offline for ONNX Runtime says so (ONNX metadata and manifest "runs_on"), and
verify runs it nowhere else: asking for another runtime is bad input, and no runtime chosen means the
allowed ones. The file's metadata counts without a manifest, and the manifest without the metadata."""

from __future__ import annotations

import json
import shutil

import onnx
import pytest

from odexport.errors import InputError
from odexport.backends import RUNS_ON_KEY
from odexport.verification import verify_artifact
from test_verify_cli import assert_clean_error, run_cli


def metadata(model_file) -> dict[str, str]:
    return {prop.key: prop.value for prop in onnx.load(str(model_file)).metadata_props}


def test_the_onnxruntime_target_marks_its_file_and_manifest_and_the_portable_one_does_not(
        tiny_onnxruntime_artifact, tiny_artifacts):
    manifest = json.loads((tiny_onnxruntime_artifact / "manifest.json").read_text())
    assert manifest["runs_on"] == ["onnxruntime"]
    assert json.loads(metadata(tiny_onnxruntime_artifact / "model.onnx")[RUNS_ON_KEY]) == ["onnxruntime"]
    portable = json.loads((tiny_artifacts["onnx"] / "manifest.json").read_text())
    assert portable["runs_on"] is None
    assert RUNS_ON_KEY not in metadata(tiny_artifacts["onnx"] / "model.onnx")


@pytest.fixture(params=["artifact directory", "onnx file without manifest", "manifest without metadata"])
def restricted(request, tiny_onnxruntime_artifact, tmp_path):
    """The onnxruntime artifact as verify may be given it, each carrying the restriction one way."""
    if request.param == "artifact directory":
        return tiny_onnxruntime_artifact
    if request.param == "onnx file without manifest":
        alone = tmp_path / "elsewhere" / "model.onnx"
        alone.parent.mkdir()
        shutil.copy(tiny_onnxruntime_artifact / "model.onnx", alone)
        return alone
    directory = shutil.copytree(tiny_onnxruntime_artifact, tmp_path / "stripped")
    model = onnx.load(str(directory / "model.onnx"))
    kept = [prop for prop in model.metadata_props if prop.key != RUNS_ON_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, str(directory / "model.onnx"))
    return directory


def test_verify_refuses_another_runtime_on_it(restricted, tiny_model):
    with pytest.raises(InputError) as caught:
        verify_artifact(restricted, model=tiny_model, runtime="openvino")
    assert caught.value.exit_code == 2
    assert "onnxruntime only" in caught.value.message and "openvino" in caught.value.message
    assert "--runtime onnxruntime" in caught.value.hint


@pytest.mark.parametrize("runtime", [None, "all"])
def test_verify_without_a_runtime_runs_only_the_allowed_one(restricted, tiny_model, runtime):
    report = verify_artifact(restricted, model=tiny_model, runtime=runtime)
    assert [result.runtime for result in report.runtimes] == ["onnxruntime"]
    assert report.passed, report.failures()
    if runtime == "all":
        assert any(note.startswith("openvino left out: model.onnx is correct on onnxruntime only")
                   for note in report.notes), report.notes


def test_the_portable_onnx_still_runs_in_openvino(tiny_artifacts, tiny_model):
    report = verify_artifact(tiny_artifacts["onnx"], model=tiny_model, runtime="openvino")
    assert [result.runtime for result in report.runtimes] == ["openvino"] and report.passed


def test_the_command_exits_2_naming_the_reason(tiny_onnxruntime_artifact, official_checkpoint):
    result = run_cli("verify", tiny_onnxruntime_artifact, "-c", official_checkpoint("od_resnet18"),
                     "--runtime", "openvino")
    assert_clean_error(result, 2, "onnxruntime only", "openvino may load it but compute wrong outputs")
