"""`verify --runtime reference`: the ONNX reference evaluator as an oracle independent of ONNX Runtime and
OpenVINO, on od_resnet18 (10 classes, 32x32) through the CLI, and on TinyODNet in every lowering."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clean_errors import assert_clean_error
from odexport.cli.app import app
from odexport.conversion import convert_checkpoint, convert_model
from odexport.verification import verify_artifact
from strategies import tiny_od_net

runner = CliRunner()
ONE_BATCH = ("--batch", "6")  # the 6 default inputs in one forward: the evaluator is slow per call


def run_cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_reference_passes_the_artifact_of_its_checkpoint(resnet, tmp_path):
    checkpoint, artifact = resnet
    report_file = tmp_path / "report.json"
    result = run_cli("verify", artifact, "-c", checkpoint, "--runtime", "reference", *ONE_BATCH,
                     "--json", report_file)
    assert result.exit_code == 0, result.output
    report = json.loads(report_file.read_text())
    assert [r["runtime"] for r in report["runtimes"]] == ["reference"]
    assert report["passed"]


def test_reference_fails_the_artifact_of_another_checkpoint(resnet, official_checkpoint, tmp_path):
    checkpoint, _ = resnet
    other = official_checkpoint("od_resnet18", seed=1)
    artifact = convert_checkpoint(other, target="onnx", output=tmp_path / "other", imgsz=32, verify=False,
                                  lowering="decomposed").output_dir
    result = run_cli("verify", artifact, "-c", checkpoint, "--runtime", "reference", *ONE_BATCH)
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output and "first divergent layer" in result.output


def test_all_leaves_the_slow_reference_out(tiny_artifacts, tiny_model):
    report = verify_artifact(tiny_artifacts["onnx"], model=tiny_model, runtime="all")
    assert "reference" not in [r.runtime for r in report.runtimes]


@pytest.mark.parametrize("lowering", ["decomposed", "custom-op", "dynamic-weight"])
def test_reference_runs_every_lowering_and_tells_models_apart(lowering, tmp_path):
    model = tiny_od_net()
    artifact = convert_model(model, target="onnx", output=tmp_path / lowering, imgsz=32, lowering=lowering,
                             verify=False).output_dir
    assert verify_artifact(artifact, model=model, runtime="reference").passed
    other = verify_artifact(artifact, model=tiny_od_net(seed=1), runtime="reference")
    assert not other.passed and other.runtimes[0].layers.first_divergent is not None


def test_reference_reads_no_openvino_ir(resnet, tiny_artifacts):
    checkpoint, _ = resnet
    result = run_cli("verify", tiny_artifacts["openvino"] / "model.xml", "-c", checkpoint, "--runtime", "reference")
    assert_clean_error(result, 2, "reference cannot run model.xml")


def test_reference_refuses_an_onnx_runtime_only_artifact(resnet, tiny_onnxruntime_artifact):
    checkpoint, _ = resnet
    result = run_cli("verify", tiny_onnxruntime_artifact, "-c", checkpoint, "--runtime", "reference")
    assert_clean_error(result, 2, "is correct on onnxruntime only")
