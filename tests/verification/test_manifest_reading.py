"""A manifest is read in one place and checked: a malformed one is bad input (exit 2) naming the field in
verify, profile and inspect alike, and no path it lists may lead outside the artifact directory."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from artifact_edits import edit_initializer, layer_initializers, scale_channel
from clean_errors import assert_clean_error
from odexport.cli.app import app
from odexport.errors import InputError
from odexport.verification import verify_artifact

runner = CliRunner()


def run_cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def edited(manifest: dict, **changes) -> dict:
    return manifest | changes


def without(manifest: dict, key: str) -> dict:
    return {name: value for name, value in manifest.items() if name != key}


# (how the manifest is damaged, what the error must name)
MALFORMED = {
    "a JSON list": (lambda m: [m], "must be a JSON object, found a list"),
    "a number": (lambda m: 5, "must be a JSON object, found a number"),
    "files a number": (lambda m: edited(m, files=5), '"files" must be a list of strings, found a number 5'),
    "files entry a number": (lambda m: edited(m, files=[m["files"][0], 7]), '"files"[1] must be a string'),
    "format missing": (lambda m: without(m, "format"), 'required field "format" is missing'),
    "format a string": (lambda m: edited(m, format="1"), '"format" must be an integer'),
    "format unknown": (lambda m: edited(m, format=99), "manifest format 99"),
    "files missing": (lambda m: without(m, "files"), 'required field "files" is missing'),
    "precision missing": (lambda m: without(m, "precision"), 'required field "precision" is missing'),
    "precision a list": (lambda m: edited(m, precision=["fp32"]), '"precision" must be a string'),
    "inputs an object": (lambda m: edited(m, inputs={"name": "input"}), '"inputs" must be a list of objects'),
    "inputs missing": (lambda m: without(m, "inputs"), 'required field "inputs" is missing'),
    "input shape a string": (lambda m: edited(m, inputs=[m["inputs"][0] | {"shape": "NCHW"}]),
                             '"inputs"[0]."shape" must be a list of integers or axis names'),
    "outputs entry a string": (lambda m: edited(m, outputs=["logits"]), '"outputs"[0] must be an object'),
    "output name missing": (lambda m: edited(m, outputs=[without(m["outputs"][0], "name")]),
                            'required field "outputs"[0]."name" is missing'),
    "preprocessing a list": (lambda m: edited(m, preprocessing=[0.5]), '"preprocessing" must be an object or null'),
    "preprocessing mean a string": (lambda m: edited(m, preprocessing=m["preprocessing"] | {"mean": "imagenet"}),
                                    '"preprocessing"."mean" must be a list of numbers'),
    "odconv_layers an object": (lambda m: edited(m, odconv_layers={"path": "conv1"}),
                                '"odconv_layers" must be a list of objects'),
    "odconv layer path a number": (lambda m: edited(m, odconv_layers=[m["odconv_layers"][0] | {"path": 3}]),
                                   '"odconv_layers"[0]."path" must be a string'),
    "eval_semantics a string": (lambda m: edited(m, eval_semantics="apply"), '"eval_semantics" must be an object'),
    "parity input shapes wrong": (lambda m: edited(m, parity={"input_shapes": [[32, 32]]}),
                                  '"parity"."input_shapes"[0] must be [C, H, W]'),
    "producer a number": (lambda m: edited(m, producer=1), '"producer" must be a string or null'),
    "runs_on a string": (lambda m: edited(m, runs_on="onnxruntime"), '"runs_on" must be a list of runtime names'),
}


@pytest.fixture
def damaged(tiny_artifacts, tmp_path):
    """damaged(edit) -> a copy of the tiny ONNX artifact whose manifest.json is edit(manifest)."""

    def make(edit) -> Path:
        directory = Path(shutil.copytree(tiny_artifacts["onnx"], tmp_path / f"artifact{len(list(tmp_path.iterdir()))}"))
        manifest = json.loads((directory / "manifest.json").read_text())
        (directory / "manifest.json").write_text(json.dumps(edit(manifest)))
        return directory

    return make


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_manifest_exits_2_naming_the_field_in_verify_profile_and_inspect(damaged, tmp_path, case):
    edit, phrase = MALFORMED[case]
    artifact = damaged(edit)
    for args in (("verify", artifact, "-c", tmp_path / "checkpoint.pth.tar"),
                 ("verify", artifact / "model.onnx", "-c", tmp_path / "checkpoint.pth.tar"),
                 ("profile", artifact, "-n", "1", "--time", "0.1"),
                 ("inspect", artifact),
                 ("inspect", artifact / "model.onnx")):
        assert_clean_error(run_cli(*args), 2, "manifest.json", phrase)


def test_format_2_with_producer_and_runs_on_is_read(damaged, tiny_model):
    artifact = damaged(lambda m: edited(m, format=2, producer="odexport", runs_on=["onnxruntime"]))
    assert verify_artifact(artifact, model=tiny_model, batch_sizes=[6]).passed
    shown = run_cli("inspect", artifact, "--json")
    assert shown.exit_code == 0, shown.stderr
    manifest = json.loads(shown.stdout)["manifest"]
    assert (manifest["format"], manifest["producer"], manifest["runs_on"]) == (2, "odexport", ["onnxruntime"])


@pytest.fixture
def broken_beside_a_good_one(tiny_artifacts, tmp_path):
    """(broken, good): two copies of the tiny ONNX artifact side by side; broken's own model has one
    kernel channel of conv1 scaled, so verify fails it."""
    good = Path(shutil.copytree(tiny_artifacts["onnx"], tmp_path / "good"))
    broken = Path(shutil.copytree(tiny_artifacts["onnx"], tmp_path / "broken"))
    (name,) = [n for n in layer_initializers(onnx.load(str(broken / "model.onnx")), "conv1") if "stacked" in n]
    edit_initializer(broken / "model.onnx", name, scale_channel)
    return broken, good


def point_files_at(directory: Path, target: str) -> None:
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"] = [target]
    (directory / "manifest.json").write_text(json.dumps(manifest))


def test_the_broken_artifact_fails_on_its_own(broken_beside_a_good_one, tiny_model):
    broken, good = broken_beside_a_good_one
    assert not verify_artifact(broken, model=tiny_model, batch_sizes=[6]).passed
    assert verify_artifact(good, model=tiny_model, batch_sizes=[6]).passed


@pytest.mark.parametrize("how", ["relative", "absolute", "symlink"])
def test_a_manifest_cannot_send_verify_to_a_model_outside_the_artifact(broken_beside_a_good_one, tiny_model, how):
    broken, good = broken_beside_a_good_one
    if how == "relative":
        listed = "../good/model.onnx"
    elif how == "absolute":
        listed = str(good / "model.onnx")
    else:
        os.symlink(good / "model.onnx", broken / "elsewhere.onnx")
        listed = "elsewhere.onnx"
    point_files_at(broken, listed)
    with pytest.raises(InputError, match="outside the artifact directory") as caught:
        verify_artifact(broken, model=tiny_model, batch_sizes=[6])
    assert repr(listed) in caught.value.message
    for command in (("verify", broken, "-c", broken / "missing.pth.tar"), ("profile", broken, "-n", "1"),
                    ("inspect", broken)):
        assert_clean_error(run_cli(*command), 2, "outside the artifact directory", listed)


def test_a_symlink_inside_the_artifact_stays_readable(tiny_artifacts, tmp_path, tiny_model):
    artifact = Path(shutil.copytree(tiny_artifacts["onnx"], tmp_path / "linked"))
    os.symlink("model.onnx", artifact / "alias.onnx")
    point_files_at(artifact, "alias.onnx")
    assert verify_artifact(artifact, model=tiny_model, batch_sizes=[6]).passed
