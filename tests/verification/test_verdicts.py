"""What a verdict means: fp32 judged relative to each output's own scale (a wrong artifact fails however
small its logits), a pass on a reference that cannot tell right from wrong refused, and every output of a
multi-output artifact counted."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper
from typer.testing import CliRunner

from odexport.checkpoint import load_checkpoint, save_official_checkpoint
from odexport.cli.app import app
from odexport.conversion import convert_checkpoint, convert_model
from odexport.pipeline.verdict import judge_parity
from odexport.errors import InputError, ParityError
from odexport.inputs import parity_inputs
from odexport.models import ODConv2d, create_model, randomize_
from odexport.backends.onnxruntime import OnnxRuntimeRunner
from odexport.backends.torch import TorchRunner
from odexport.parity import NEAR_ZERO, check_parity, compare_output, degenerate_reason
from odexport.precisions import FP32
from odexport.verification import verify_artifact
from strategies import tiny_od_net

SIZE = 32
runner = CliRunner()


def run_cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def reference_outputs(model: torch.nn.Module) -> np.ndarray:
    """The model's first output on the parity inputs (photographs and random tensors): [6, ...]."""
    with torch.no_grad():
        out = model.eval()(torch.from_numpy(parity_inputs((SIZE, SIZE))))
    return (out if isinstance(out, torch.Tensor) else next(iter(out.values()))).numpy()


# --- freshly built zoo models: logits ~1e-27 ------------------------------------------------------------

@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(checkpoint A, checkpoint B, A's ONNX artifact converted without parity): two freshly built,
    untrained od_mobilenetv2_050 (different seeds)."""
    directory = tmp_path_factory.mktemp("fresh")
    checkpoints = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = create_model("od_mobilenetv2_050", num_classes=10, kernel_num=4)
        checkpoints.append(save_official_checkpoint(model, directory / f"fresh{seed}.pth.tar"))
    artifact = convert_checkpoint(checkpoints[0], target="onnx", output=directory / "a_onnx", imgsz=SIZE, lowering="decomposed",
                                  verify=False).output_dir
    return checkpoints[0], checkpoints[1], artifact


def test_a_fresh_zoo_model_is_degenerate_by_its_tiny_logits(fresh):
    logits = reference_outputs(load_checkpoint(fresh[0]).model)
    assert np.abs(logits).max() < NEAR_ZERO
    assert "near zero" in degenerate_reason(logits)


def test_verify_fails_an_artifact_of_another_checkpoint_even_with_tiny_logits(fresh, tmp_path):
    _, other, artifact = fresh
    result = run_cli("verify", artifact, "-c", other, "--batch", "6", "--json", tmp_path / "report.json")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "parity check failed on onnxruntime: logits" in result.stderr and "Traceback" not in result.stderr
    (output,) = json.loads((tmp_path / "report.json").read_text())["runtimes"][0]["parity"]["outputs"]
    assert {"error", "cosine"} <= set(output["failed_checks"])
    assert output["degenerate"] is not None  # noted, but a failure stands: the artifact does differ


def test_verify_refuses_a_pass_on_a_degenerate_reference_unless_allowed(fresh, tmp_path):
    checkpoint, _, artifact = fresh
    refused = run_cli("verify", artifact, "-c", checkpoint, "--batch", "6")
    assert refused.exit_code == 2, (refused.stdout, refused.stderr)
    assert "near zero" in refused.stderr and "--allow-degenerate" in refused.stderr
    allowed = run_cli("verify", artifact, "-c", checkpoint, "--batch", "6", "--allow-degenerate",
                      "--json", tmp_path / "report.json")
    assert allowed.exit_code == 0, (allowed.stdout, allowed.stderr)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] and any("near zero" in note and "allowed" in note for note in report["notes"])


def test_convert_refuses_a_degenerate_reference_unless_allowed(fresh, tmp_path):
    checkpoint, _, _ = fresh
    refused = run_cli("convert", checkpoint, "--target", "onnx", "--lowering", "decomposed", "--imgsz", SIZE, "-o", tmp_path / "out")
    assert refused.exit_code == 2, (refused.stdout, refused.stderr)
    assert "near zero" in refused.stderr and "--allow-degenerate" in refused.stderr
    assert not (tmp_path / "out").exists()
    # Refused before the export: the user does not wait for an artifact that will not be written.
    assert "Rewrite: done" in refused.stderr and "ONNX:" not in refused.stderr
    allowed = run_cli("convert", checkpoint, "--target", "onnx", "--lowering", "decomposed", "--imgsz", SIZE, "-o", tmp_path / "out",
                      "--allow-degenerate")
    assert allowed.exit_code == 0, (allowed.stdout, allowed.stderr)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["parity"]["passed"] and any("near zero" in note for note in manifest["notes"])


class IgnoresItsInput(torch.nn.Module):
    """Logits that differ by class but not by input: a pass on them says nothing about the network."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bias = torch.nn.Parameter(torch.linspace(-1.0, 1.0, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(1, 2, 3))[:, None] * 0.0 + self.bias


def test_convert_refuses_outputs_that_are_the_same_for_every_input(tmp_path):
    with pytest.raises(InputError, match="logits the same for every input") as caught:
        convert_model(IgnoresItsInput(), target="onnx", output=tmp_path / "out", imgsz=SIZE, lowering="decomposed")
    assert "--allow-degenerate" in caught.value.hint and not (tmp_path / "out").exists()


def test_constant_and_nan_references():
    assert "constant" in degenerate_reason(np.full((6, 10), 3.5, dtype=np.float32))
    assert degenerate_reason(np.full((6, 10), np.nan, dtype=np.float32)) is None  # reported as non-finite


@pytest.mark.parametrize("make", [
    lambda: tiny_od_net(),                                                               # the tests' fixture
    lambda: randomize_(create_model("od_resnet18", kernel_num=1), seed=0),               # odexport demo
    lambda: randomize_(create_model("od_mobilenetv2_050", num_classes=10, kernel_num=4), seed=0),  # CheckpointFactory
], ids=["tiny_od_net", "demo-od_resnet18", "randomized-od_mobilenetv2_050"])
def test_seeded_test_models_and_the_demo_are_not_degenerate(make):
    assert degenerate_reason(reference_outputs(make())) is None


# --- scale-invariance ----------------------------------------------------------------------------------

def scaled_head(model: torch.nn.Module, factor: float) -> torch.nn.Module:
    """A copy of TinyODNet with its final Linear layer multiplied by ``factor``: logits times factor."""
    scaled = copy.deepcopy(model)
    with torch.no_grad():
        scaled.head.weight.mul_(factor)
        scaled.head.bias.mul_(factor)
    return scaled


@pytest.mark.parametrize("factor", [1.0, 1e-20])
def test_fp32_verdict_is_scale_invariant_end_to_end(tmp_path, factor):
    right, wrong = scaled_head(tiny_od_net(seed=0), factor), scaled_head(tiny_od_net(seed=1), factor)
    artifact = convert_model(right, target="onnx", output=tmp_path / "right", imgsz=SIZE, verify=False, lowering="decomposed").output_dir
    for runtime in ("onnxruntime", "openvino"):
        passed = verify_artifact(artifact, model=right, runtime=runtime, batch_sizes=[6], allow_degenerate=True)
        failed = verify_artifact(artifact, model=wrong, runtime=runtime, batch_sizes=[6], allow_degenerate=True)
        assert passed.passed, (runtime, passed.failures())
        assert not failed.passed, runtime


@pytest.fixture(scope="module")
def real_outputs(tiny_artifacts):
    """(reference of the right model, reference of another seed, ONNX Runtime's output of the right artifact)
    on the parity inputs, float64."""
    samples = parity_inputs((SIZE, SIZE))
    session = OnnxRuntimeRunner(tiny_artifacts["onnx"] / "model.onnx")
    (candidate,) = session.infer({session.input_names[0]: samples}).values()
    return (reference_outputs(tiny_od_net(seed=0)).astype(np.float64),
            reference_outputs(tiny_od_net(seed=1)).astype(np.float64), candidate.astype(np.float64))


@settings(max_examples=60, deadline=None)
@given(exponent=st.integers(-30, 30), mantissa=st.floats(1.0, 9.99))
def test_compare_output_gives_the_same_verdict_at_every_scale(real_outputs, exponent, mantissa):
    right, other, candidate = real_outputs
    factor = mantissa * 10.0 ** exponent
    fp32 = FP32.tolerance
    assert compare_output("logits", right * factor, candidate * factor, fp32).passed
    wrong = compare_output("logits", other * factor, candidate * factor, fp32)
    assert not wrong.passed and {"error", "cosine"} <= set(wrong.failed_checks)


# --- a multi-output artifact wrong on its second output ------------------------------------------------

class TwoOutputs(torch.nn.Module):
    """An ODConv network with two outputs: class scores and pooled features."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, 2, 1)
        self.conv = ODConv2d(8, 16, 3, padding=1, kernel_num=4)
        self.bn = torch.nn.BatchNorm2d(16)
        self.head = torch.nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = torch.relu(self.bn(self.conv(torch.relu(self.stem(x)))))
        return {"scores": self.head(features.mean(dim=(2, 3))), "pooled": features.amax(dim=(2, 3))}


def perturb_output(model_file: Path, output: str, factor: float) -> None:
    """Multiply graph output ``output`` by ``factor``: a Mul node between its producer and the output."""
    model = onnx.load(str(model_file))
    raw = f"{output}_before_perturbation"
    for node in model.graph.node:
        node.output[:] = [raw if name == output else name for name in node.output]
        node.input[:] = [raw if name == output else name for name in node.input]
    model.graph.initializer.append(numpy_helper.from_array(np.array(factor, dtype=np.float32), "perturbation"))
    model.graph.node.append(helper.make_node("Mul", [raw, "perturbation"], [output]))
    onnx.checker.check_model(model)
    onnx.save(model, str(model_file))


@pytest.fixture(scope="module")
def second_output_wrong(tmp_path_factory):
    """(model, artifact directory): TwoOutputs converted to ONNX, then its "pooled" output scaled by 1.05."""
    model = randomize_(TwoOutputs(), seed=3).eval()
    out = tmp_path_factory.mktemp("two") / "onnx"
    artifact = convert_model(model, target="onnx", output=out, imgsz=SIZE, lowering="decomposed").output_dir  # correct as converted
    perturb_output(artifact / "model.onnx", "pooled", 1.05)
    return model, artifact


def test_verify_fails_an_artifact_wrong_only_on_its_second_output(second_output_wrong):
    model, artifact = second_output_wrong
    report = verify_artifact(artifact, model=model, runtime="all", batch_sizes=[6])
    assert not report.passed
    for result in report.runtimes:
        verdicts = {out.name: out.passed for out in result.parity.outputs}
        assert verdicts == {"scores": True, "pooled": False}, result.runtime
    assert all(": pooled max abs error" in failure for failure in report.failures()), report.failures()


def test_convert_parity_fails_an_artifact_wrong_only_on_its_second_output(second_output_wrong):
    model, artifact = second_output_wrong
    session = OnnxRuntimeRunner(artifact / "model.onnx")
    reference = TorchRunner(model, session.input_names, session.output_names)
    parity = check_parity(reference, session, [parity_inputs((SIZE, SIZE))], batch_sizes=(1, 3),
                          tolerance=FP32.tolerance)
    assert [(out.name, out.passed) for out in parity.outputs] == [("scores", True), ("pooled", False)]
    with pytest.raises(ParityError, match="pooled max abs error"):
        judge_parity(parity, "fp32", artifact, allow_degenerate=False)
