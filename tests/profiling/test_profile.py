"""profile() on TinyODNet artifacts in real ONNX Runtime and OpenVINO sessions: sane statistics, the
per-layer split onto the ODConv layers, JSON that reads back, a PNG chart. No test reads a time."""

from __future__ import annotations

import json

import matplotlib.image
import pytest

from typer.testing import CliRunner

from conftest import QUICK, SIZE
from odexport.cli.app import app
from odexport.conversion import convert_model
from odexport.errors import InputError
from odexport.profiling import ATTENTION, CONVOLUTION, ProfileReport, profile
from odexport.profiling.plot import plot_profile, profile_figure

LAYERS = ("conv1", "dw", "pw")  # TinyODNet's ODConv layers


def run_cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_sane(run, batch: int) -> None:
    stats = run.latency
    assert stats.count >= 1
    assert 0 < stats.min_ms <= stats.median_ms <= stats.p90_ms <= stats.p99_ms <= stats.max_ms
    assert stats.min_ms <= stats.mean_ms <= stats.max_ms
    assert run.batch == batch and run.input_shape == (batch, 3, SIZE, SIZE)
    assert run.compile_ms > 0 and run.first_inference_ms > 0 and run.throughput > 0
    assert run.peak_memory_mib >= 0


@pytest.fixture(scope="module")
def onnx_report(tiny_artifacts):
    return profile(tiny_artifacts["onnx"], runtime="all", precision=["fp32,bf16"], batch=["1,2"],
                   layers=True, layer_runs=3, **QUICK)


def test_every_runtime_precision_and_batch_is_measured(onnx_report):
    keys = [run.key for run in onnx_report.runs]
    assert keys == ["onnxruntime fp32 b1", "onnxruntime fp32 b2", "openvino fp32 b1", "openvino fp32 b2",
                    "openvino bf16 b1", "openvino bf16 b2"]
    for run in onnx_report.runs:
        assert_sane(run, run.batch)
    assert onnx_report.notes == ("onnxruntime does not offer bf16 (skipped)",)
    assert onnx_report.odconv_layers == LAYERS
    assert onnx_report.machine["logical_cores"] >= 1 and onnx_report.machine["versions"]["openvino"]


def test_layer_time_is_attributed_to_each_odconv_layer_in_both_runtimes(onnx_report):
    for run in onnx_report.runs:
        layers = run.layers
        assert layers is not None and layers.runs == 3
        for category in (ATTENTION, CONVOLUTION):
            modules = {row.module for row in layers.layers if row.category == category}
            assert modules == set(LAYERS), (run.key, category, modules)
            assert layers.by_category[category] > 0
        assert abs(sum(row.ms for row in layers.layers) - layers.total_ms) < 1e-9
        # The stem's plain convolution is outside ODConv (ONNX Runtime names it after the Relu fused into it).
        assert {"stem.0", "stem.2"} & {row.module for row in layers.layers if row.category == "other"}
        # Every ODConv layer convolves, and its record says so by node type in both runtimes.
        convolutions = [row for row in layers.layers if row.category == CONVOLUTION]
        assert all(any("Conv" in op for op in row.op_ms) for row in convolutions), (run.key, convolutions)
        assert all(abs(sum(row.op_ms.values()) - row.ms) < 1e-9 for row in layers.layers)


def test_openvino_names_its_reference_kernels(onnx_report):
    """The decomposed im2col runs Slice and Pad nodes that OpenVINO's CPU plugin executes with reference
    kernels; each one flagged is a node whose kernel really is ref_*."""
    for run in onnx_report.runs:
        assert all(node.exec_type.startswith("ref") for node in run.layers.reference_kernels)
    assert any(run.layers.reference_kernels for run in onnx_report.runs if run.runtime == "openvino")


def test_json_reads_back_equal(onnx_report, tmp_path):
    path = onnx_report.write_json(tmp_path / "deep" / "profile.json")
    assert json.loads(path.read_text())["runs"][0]["latency"]["count"] == onnx_report.runs[0].latency.count
    assert ProfileReport.read_json(path) == onnx_report


def test_plot_names_the_artifact_labels_every_configuration_and_splits_each_module(onnx_report, tmp_path):
    figure = profile_figure(onnx_report)
    latency, *modules = figure.axes
    title = latency.get_title()
    assert "onnx (model.onnx)" in title and f"{SIZE}x{SIZE}" in title and "latency hint, 2 threads" in title
    labels = [text.get_text() for text in latency.texts]
    for run in onnx_report.runs:  # each configuration is a labelled bar
        assert f"{run.runtime} {run.precision}, batch {run.batch}" in [t.get_text() for t in latency.get_yticklabels()]
        assert any(f"median {run.latency.median_ms:.3g} ms" in label for label in labels)
    assert len(modules) == len(onnx_report.runs)  # one per-module chart per configuration measured with layers
    for axis, run in zip(modules, onnx_report.runs):
        assert axis.get_title().startswith(f"{run.runtime} {run.precision}, batch {run.batch}")
        shown = [t.get_text() for t in axis.get_yticklabels()]
        assert run.layers.layers[0].module in shown and set(LAYERS) <= set(shown)  # slowest first; every ODConv layer
        assert {ATTENTION, CONVOLUTION} <= {t.get_text() for t in axis.get_legend().get_texts()}
        assert len(axis.texts) == len(shown)  # every module's total is written on its bar
    path = plot_profile(onnx_report, tmp_path / "profile.png")
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 600 and image.std() > 0.05  # a tall chart with something drawn on it


def test_openvino_ir_with_throughput_hint(tiny_artifacts):
    report = profile(tiny_artifacts["openvino"], hint="throughput", precision="bf16", streams=2, **QUICK)
    (run,) = report.runs
    assert (run.runtime, run.precision, run.hint, run.streams) == ("openvino", "bf16", "throughput", 2)
    assert_sane(run, 1)
    assert run.requests >= 1 and run.layers is None


@pytest.mark.parametrize("kwargs, phrase", [
    ({"runtime": "onnxruntime", "precision": "bf16"}, "onnxruntime does not offer bf16"),
    ({"precision": "int8"}, "int8 is written by convert"),
    ({"precision": ["int4"]}, "unknown precision"),
    ({"runtime": "tensorrt"}, "unknown runtime"),
    ({"hint": "fast"}, "unknown performance hint"),
    ({"iterations": 0}, "cannot time"),
    ({"batch": "0"}, "not a positive int"),
    ({"imgsz": "64"}, "takes 32x32 inputs"),
])
def test_bad_options_are_input_errors(tiny_artifacts, kwargs, phrase):
    with pytest.raises(InputError, match=phrase):
        profile(tiny_artifacts["onnx"], **{**QUICK, **kwargs})


def test_fixed_batch_and_runtime_mismatches(tiny_artifacts, tiny_model, tmp_path):
    from odexport.conversion import convert_model

    fixed = convert_model(tiny_model, target="onnx", output=tmp_path / "fixed", imgsz=SIZE, lowering="dynamic-weight",
                          batch=2, verify=False).output_dir
    with pytest.raises(InputError, match="fixed batch of 2"):
        profile(fixed, batch=1, **QUICK)
    with pytest.raises(InputError, match="cannot run model.xml"):
        profile(tiny_artifacts["openvino"], runtime="onnxruntime", **QUICK)
    with pytest.raises(InputError, match="no such file"):
        profile(tmp_path / "missing.onnx", **QUICK)


def test_an_int8_artifact_is_measured_as_written(tiny_model, tmp_path):
    from odexport.conversion import convert_model

    quantized = convert_model(tiny_model, target="openvino", output=tmp_path / "int8", imgsz=SIZE, precision="int8",
                              calibration="synthetic", calibration_size=4, verify=False).output_dir
    report = profile(quantized, precision="fp32", **QUICK)
    assert [run.key for run in report.runs] == ["openvino int8 b1"]
    assert any("quantized to int8" in note for note in report.notes)


def test_a_checkpoint_is_converted_on_the_fly(official_checkpoint):
    report = profile(official_checkpoint("od_resnet18"), runtime="onnxruntime", imgsz=SIZE, batch=[1, 2],
                     layers=True, layer_runs=2, lowering="decomposed", **QUICK)
    assert [run.key for run in report.runs] == ["onnxruntime fp32 b1", "onnxruntime fp32 b2"]
    assert len(report.odconv_layers) == 16 and "layer1.0.conv1" in report.odconv_layers
    attributed = {row.module for row in report.runs[0].layers.layers if row.category == ATTENTION}
    assert attributed == set(report.odconv_layers)


@pytest.mark.slow  # two conversions of od_resnet18
def test_a_fixed_batch_lowering_is_converted_once_per_batch(official_checkpoint):
    report = profile(official_checkpoint("od_resnet18"), runtime="openvino", imgsz=SIZE, batch=[1, 2],
                     lowering="dynamic-weight", **QUICK)
    assert [run.input_shape[0] for run in report.runs] == [1, 2]
    assert len(set(report.model_file.split(", "))) == 2


def test_openvino_times_a_dynamic_file_as_shipped_beside_the_static_compile(tiny_artifacts, tmp_path):
    """The user's own compile of the file (dynamic batch as written) is measured and labelled beside the
    reshaped static figure; ONNX Runtime, which never reshapes, has the one figure."""
    report = profile(tiny_artifacts["onnx"], runtime="all", batch=[1], **QUICK)
    by_runtime = {run.runtime: run for run in report.runs}
    shipped = by_runtime["openvino"]
    assert shipped.shipped_latency is not None and shipped.shipped_latency.count >= 1
    assert shipped.shipped_compile_ms > 0 and shipped.shipped_ratio > 0
    assert by_runtime["onnxruntime"].shipped_latency is None
    again = ProfileReport.read_json(report.write_json(tmp_path / "report.json"))
    assert again.runs[1].shipped_latency == shipped.shipped_latency
    result = run_cli("profile", tiny_artifacts["openvino"], "--time", "0.2", "--iterations", "6")
    assert result.exit_code == 0, result.stderr
    assert "median ms, static shapes" in result.stdout and "as shipped / static" in result.stdout


def test_a_fixed_shape_file_has_nothing_to_reshape(tiny_model, tmp_path):
    fixed = convert_model(tiny_model, target="openvino", output=tmp_path / "fixed", imgsz=SIZE, batch=1,
                          lowering="decomposed", verify=False).output_dir
    (run,) = profile(fixed, **QUICK).runs
    assert run.runtime == "openvino" and run.shipped_latency is None
