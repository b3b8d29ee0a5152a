"""The Python API (odexport.convert / verify / inspect) on models outside the zoo: the README example as
written, a multi-output detector with a dynamic batch, eval semantics, temperatures, inputs that are not
RGB images, and the refusal of dynamic convolutions that no adapter recognises."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import odexport
from odexport.console import SilentReporter
from odexport.errors import InputError
from variants import randomize
from variants.detection import TinyDetector
from variants.dyconv import Dynamic_conv2d
from variants.linear_heads import LinearHeadODConv
from variants.unrecognised import NetWithSampleLoopConv

ROOT = Path(__file__).resolve().parents[1]


def markdown_python_block(path: Path, heading: str) -> str:
    """The first ```python block after ``heading`` in a markdown file."""
    text = path.read_text()
    after = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", after, re.DOTALL).group(1)


def test_readme_python_api_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(markdown_python_block(ROOT / "README.md", "## Python API"), "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "[('conv', 'official')]" in printed
    assert "exported_net/model.xml True" in printed
    assert "['scores', 'pooled']" in printed
    manifest = json.loads((tmp_path / "exported_net" / "manifest.json").read_text())
    assert manifest["inputs"][0]["shape"] == ["batch", 3, 64, 64]


def test_adapter_guide_example_registers_a_working_adapter(tmp_path):
    namespace: dict = {}
    exec(compile(markdown_python_block(ROOT / "docs" / "adapters.md", "## An adapter in a few lines"),
                 "adapters.md", "exec"), namespace)

    class GatedConv(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.kernels = torch.nn.Parameter(torch.randn(3, 5, 4, 3, 3) * 0.3)
            self.gate = torch.nn.Linear(4, 3)
            self.stride, self.padding = 1, 1

        def forward(self, x):
            mix = torch.softmax(self.gate(x.mean(dim=(2, 3))), dim=1)
            weight = torch.einsum("bn,noikl->boikl", mix, self.kernels)
            return torch.cat([torch.nn.functional.conv2d(x[i:i + 1], weight[i], None, 1, 1) for i in range(len(x))])

    result = odexport.convert(GatedConv().eval(), torch.randn(1, 4, 10, 10), target="onnx", output=tmp_path / "out")
    assert result.manifest["odconv_layers"][0]["adapter"] == "my-gated-conv"
    assert result.parity.passed, result.parity.summary()


def test_detector_exports_every_output_with_a_dynamic_batch(tmp_path):
    model = randomize(TinyDetector(), seed=3)
    result = odexport.convert(model, torch.randn(1, 3, 32, 48), target="openvino", output=tmp_path / "det",
                              batch="dynamic")

    assert [o["name"] for o in result.manifest["outputs"]] == ["p4.0", "p4.1", "p8"]
    assert all(o["shape"][0] == "batch" for o in result.manifest["outputs"])
    assert {layer["adapter"] for layer in result.manifest["odconv_layers"]} == {"fused-bn-act", "official", "dyconv"}
    assert result.parity.passed and result.parity.batch_sizes == (1, 3)
    assert [o.name for o in result.parity.outputs] == ["p4.0", "p4.1", "p8"]

    report = odexport.verify(result.output_dir, model, batch=[1, 2, 5])
    assert report.passed, report.failures()
    assert [o.name for o in report.runtimes[0].parity.outputs] == ["p4.0", "p4.1", "p8"]


def test_detector_in_onnx_runtime_at_any_batch_and_every_lowering_with_a_dynamic_batch(tmp_path):
    model = randomize(TinyDetector(), seed=4)
    for lowering in ("decomposed", "custom-op"):
        result = odexport.convert(model, torch.randn(1, 3, 32, 32), target="onnx", lowering=lowering,
                                  output=tmp_path / lowering)
        assert result.parity.passed, (lowering, result.parity.summary())
        report = odexport.verify(result.output_dir, model, runtime="all", batch=4)
        assert report.passed, (lowering, report.failures())
    session = ort.InferenceSession(str(tmp_path / "decomposed" / "model.onnx"), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"input": np.zeros((7, 3, 32, 32), np.float32)})
    assert [o.shape for o in outputs] == [(7, 3, 8, 8), (7, 4, 8, 8), (7, 1, 4, 4)]


def test_batch_dependent_batchnorm_needs_an_explicit_choice_and_the_artifact_follows_it(tmp_path):
    model = randomize(LinearHeadODConv(4, 6, 3, 1, 1), seed=5)
    x = torch.randn(1, 4, 12, 12)
    with pytest.raises(InputError, match="attention BatchNorm") as error:
        odexport.convert(model, x, target="onnx", output=tmp_path / "none")
    assert "--attention-batchnorm" in error.value.hint
    assert not (tmp_path / "none").exists()

    outputs = {}
    for choice in ("apply", "skip"):
        result = odexport.convert(model, x, target="onnx", output=tmp_path / choice, attention_batchnorm=choice,
                                  preprocessing=None)
        assert result.parity.passed, result.parity.summary()
        assert result.manifest["eval_semantics"]["attention_batchnorm"] == choice
        assert any(choice in note or ("applied" if choice == "apply" else "skipped") in note for note in result.notes)
        session = ort.InferenceSession(str(result.model_file), providers=["CPUExecutionProvider"])
        outputs[choice] = session.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        at_batch_one = model(x).numpy()  # the module skips its BatchNorm here
        padded = model(torch.cat([x, x]))[:1].numpy()  # and applies it here
    # Each artifact computes its chosen function at batch 1, whatever branch tracing would have taken.
    np.testing.assert_allclose(outputs["skip"], at_batch_one, atol=1e-5)
    np.testing.assert_allclose(outputs["apply"], padded, atol=1e-5)
    assert np.abs(outputs["apply"] - outputs["skip"]).max() > 1e-2


def test_temperature_outside_the_state_dict_is_reported_and_set(tmp_path):
    model = randomize(Dynamic_conv2d(4, 6, 3, K=3, temperature=30.0), seed=6)
    x = torch.randn(1, 4, 12, 12)
    assert odexport.inspect(model).recognised[0]["temperature"] == 30.0

    default = odexport.convert(model, x, target="onnx", output=tmp_path / "t30")
    annealed = odexport.convert(model, x, target="onnx", output=tmp_path / "t1", temperature=1.0)
    assert default.manifest["odconv_layers"][0]["temperature"] == 30.0
    assert annealed.manifest["odconv_layers"][0]["temperature"] == 1.0
    assert annealed.manifest["eval_semantics"]["temperature"] == 1.0
    assert default.parity.passed and annealed.parity.passed
    assert model.attention.temperature == 30.0  # the caller's module is untouched
    runs = [ort.InferenceSession(str(r.model_file), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
            for r in (default, annealed)]
    assert np.abs(runs[0] - runs[1]).max() > 1e-3
    # verify re-applies the recorded temperature to the reference.
    report = odexport.verify(annealed.output_dir, model)
    assert report.passed and any("temperature 1" in note for note in report.notes)


def test_inputs_that_are_not_rgb_or_grey_images_use_random_parity_inputs(tmp_path):
    model = randomize(TinyDetector(in_channels=4), seed=7)
    result = odexport.convert(model, torch.randn(2, 4, 24, 24), target="onnx", output=tmp_path / "rgba")
    assert result.parity.passed
    assert result.parity.input_shapes == ((4, 24, 24),) and result.parity.samples == 6
    assert result.manifest["preprocessing"] is None
    report = odexport.verify(result.output_dir, model, runtime="all")
    assert report.passed and report.samples == {"random": 6}


def test_an_unrecognised_dynamic_convolution_the_generic_path_cannot_take_is_an_error_with_a_hint(tmp_path):
    model = NetWithSampleLoopConv().eval()
    found = odexport.inspect(model)
    assert found.recognised == () and found.generic == () and [u["path"] for u in found.unrecognised] == ["mix"]
    with pytest.raises(InputError, match="generic path cannot export with a dynamic batch: mix") as error:
        odexport.convert(model, torch.randn(1, 3, 16, 16), target="onnx", output=tmp_path / "out")
    assert "docs/adapters.md" in error.value.hint
    assert not (tmp_path / "out").exists()


def test_a_module_needs_an_example_input_and_int8_a_calibration(tmp_path):
    with pytest.raises(InputError, match="calibration"):
        odexport.convert(TinyDetector(), torch.randn(1, 3, 32, 32), precision="int8", output=tmp_path / "out")
    with pytest.raises(InputError, match="example input"):
        odexport.convert(TinyDetector(), output=tmp_path / "out")


@pytest.mark.parametrize("options, words", [
    ({"imgsz": 100000}, "larger than 8192 pixels"),
    ({"batch": 0}, "batch 0 is not a positive int"),
    ({"lowering": "winograd"}, "unknown lowering"),
    ({"calibration_size": -1, "precision": "int8", "calibration": "synthetic"}, "--calibration-size -1"),
    ({"temperature": float("nan")}, "--temperature nan"),
])
def test_options_are_refused_before_a_checkpoint_path_is_read(tmp_path, options, words):
    missing = tmp_path / "missing.pth"  # read first, it would say "no such file"
    with pytest.raises(InputError, match=words):
        odexport.convert(missing, target="onnx", output=tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_a_module_with_nan_weights_is_refused_before_export(tmp_path):
    model = TinyDetector().eval()
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("inf")
    with pytest.raises(InputError, match=r"TinyDetector: state_dict key '[\w.]+' holds inf"):
        odexport.convert(model, torch.randn(1, 3, 32, 32), target="onnx", output=tmp_path / "out", verify=False)
    assert not (tmp_path / "out").exists()


def test_calibration_with_a_float_precision_is_reported_as_ignored(tmp_path):
    heard = []

    class Listener(SilentReporter):
        def info(self, message: str) -> None:
            heard.append(message)

    odexport.convert(TinyDetector().eval(), torch.randn(1, 3, 32, 32), target="onnx", output=tmp_path / "out",
                     calibration="synthetic", verify=False, reporter=Listener())
    assert "warning: --calibration is ignored: precision fp32 is not quantized" in heard
