"""`odexport verify` as CI runs it, on od_resnet18 (10 classes, 32x32): exit codes, reports, the layer named."""

from __future__ import annotations

import json
import warnings
import xml.etree.ElementTree as ET

import onnx
import pytest
import torch
from typer.testing import CliRunner

from artifact_edits import edit_initializer, layer_initializers, scale_channel, swap_rows
from clean_errors import assert_clean_error
from odexport.checkpoint import load_checkpoint
from odexport.cli.app import app
from odexport.verification import verify_artifact

runner = CliRunner()
ONE_BATCH = ("--batch", "6")  # the 6 default inputs in one forward: od_resnet18's ODConv is slow per call


def run_cli(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def swapped(resnet, tmp_path_factory):
    """The artifact with rows 2 and 7 of the classifier swapped: classes 2 and 7 trade places."""
    import shutil

    checkpoint, artifact = resnet
    copy = shutil.copytree(artifact, tmp_path_factory.mktemp("swapped") / "onnx")
    edit_initializer(copy / "model.onnx", "fc.weight", swap_rows(2, 7))
    return checkpoint, copy


def test_correct_artifact_passes_and_writes_reports(resnet, tmp_path):
    checkpoint, artifact = resnet
    result = run_cli("verify", artifact, "--checkpoint", checkpoint, *ONE_BATCH,
                     "--json", tmp_path / "report.json", "--junit", tmp_path / "report.xml")
    assert result.exit_code == 0, result.stderr
    assert "PASSED" in result.stdout and "FAILED" not in result.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] and report["reference"].startswith("od_resnet18")
    assert report["notes"] == [] and report["failures"] == []  # the manifest's sha256 matches the checkpoint
    (output,) = report["runtimes"][0]["parity"]["outputs"]
    assert output["shape"] == output["reference_shape"] == [6, 10]
    assert output["cosine_similarity"] > 0.999999 and output["top5_agreement"] == 1.0
    suite = ET.parse(tmp_path / "report.xml").getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [("odexport.verify.onnxruntime", "logits")]
    assert suite.get("failures") == "0" and cases[0].find("failure") is None


def test_swapped_classifier_rows_fail_with_exit_1_and_name_fc(swapped, tmp_path):
    checkpoint, artifact = swapped
    result = run_cli("verify", artifact, "-c", checkpoint, *ONE_BATCH, "--junit", tmp_path / "report.xml",
                     "--json", tmp_path / "report.json")
    assert_clean_error(result, 1, "parity check failed on onnxruntime", "first divergent layer fc")
    assert "FAILED" in result.stdout and "DIVERGES" in result.stdout
    located = json.loads((tmp_path / "report.json").read_text())["runtimes"][0]["layers"]
    assert located["first_divergent"]["path"] == "fc"
    assert located["checked"] >= 35  # most of od_resnet18's modules have their own tensor
    failure = ET.parse(tmp_path / "report.xml").getroot().find("testsuite/testcase/failure")
    assert "logits max abs error" in failure.get("message") and "exceeds the limit" in failure.get("message")
    assert "first divergent layer: fc" in failure.text and "cosine" in failure.text


def test_warn_only_prints_failed_and_exits_0(swapped):
    checkpoint, artifact = swapped
    result = run_cli("verify", artifact, "-c", checkpoint, *ONE_BATCH, "--warn-only")
    assert result.exit_code == 0, result.stderr
    assert "FAILED" in result.stdout and "warning:" in result.stderr and "error:" not in result.stderr


def test_scaled_kernel_channel_of_layer3_names_layer3_0_conv1(resnet, copy_artifact):
    checkpoint, artifact = resnet
    artifact = copy_artifact(artifact)
    assert "layer3.0.conv1.stacked_weight" in layer_initializers(onnx.load(str(artifact / "model.onnx")), "layer3.0.conv1")
    edit_initializer(artifact / "model.onnx", "layer3.0.conv1.stacked_weight", scale_channel)
    report = verify_artifact(artifact, checkpoint, batch_sizes=[6])
    first = report.runtimes[0].layers.first_divergent
    # Convert folded layer3.0.bn1 into the ODConv layer: its tensor is compared with the BatchNorm's output.
    assert (first.path, first.reference) == ("layer3.0.conv1", "layer3.0.bn1")
    assert all(layer.passed for layer in report.runtimes[0].layers.layers if layer.path.startswith(("layer1", "layer2")))


@pytest.fixture(scope="module")
def foreign(resnet, tmp_path_factory):
    """A plain torch.onnx.export of the checkpoint's model at batch 1: no manifest, exporter's names."""
    checkpoint, _ = resnet
    path = tmp_path_factory.mktemp("foreign") / "plain.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(load_checkpoint(checkpoint).model, torch.randn(1, 3, 32, 32), str(path), dynamo=False)
    return checkpoint, path


def test_foreign_onnx_export_verifies_at_its_fixed_batch(foreign, tmp_path):
    checkpoint, path = foreign
    result = run_cli("verify", path, "-c", checkpoint, "--json", tmp_path / "report.json")
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] and report["batch_sizes"] == [1] and report["input_size"] == [32, 32]
    assert report["runtimes"][0]["parity"]["outputs"][0]["name"] == onnx.load(str(path)).graph.output[0].name


def test_usage_errors_exit_2(foreign, tiny_artifacts, resnet, tmp_path):
    checkpoint, path = foreign
    assert_clean_error(run_cli("verify", path, "-c", checkpoint, "--batch", "3"), 2, "fixed batch of 1")
    assert_clean_error(run_cli("verify", path, "-c", checkpoint, "--imgsz", "64"), 2, "32x32")
    xml = tiny_artifacts["openvino"] / "model.xml"
    assert_clean_error(run_cli("verify", xml, "-c", checkpoint, "--runtime", "onnxruntime"), 2,
                       "onnxruntime cannot run model.xml", "--runtime openvino")
    _, artifact = resnet
    assert_clean_error(run_cli("verify", artifact, "-c", checkpoint, "--precision", "int3"), 2, "fp32")
    assert_clean_error(run_cli("verify", artifact, "-c", checkpoint, "--batch", "1,x"), 2, "batch size")
    assert_clean_error(run_cli("verify", tmp_path / "missing", "-c", checkpoint), 2, "no such file")
    assert_clean_error(run_cli("verify", tmp_path, "-c", checkpoint), 2, "manifest.json")
    assert_clean_error(run_cli("verify", artifact, "-c", tmp_path / "missing.pth.tar"), 2, "no such file")
