"""`auto` times the candidate lowerings of each layer on the target runtime, keeps the fastest, records
what it measured, caches it, and keeps parity whatever mix it picks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from odexport.conversion import convert_model
from odexport.errors import InputError
from odexport.export import export_onnx
from odexport.lowering import get_lowering
from odexport.odconv import describe_official
from odexport.lowering.auto import AUTO_CANDIDATES, DEPTHWISE_ONLY, auto_candidates
from odexport.lowering.tuning import TimingCache, TimingContext, choose_fastest, default_cache_path, timing_module
from odexport.backends import get_target
from odexport.backends.quantization import quantized_convolutions
from odexport.rewrite import lower_model
from odexport.backends.onnxruntime import OnnxRuntimeRunner
from strategies import LayerCase, build_layer, tiny_od_net


def test_a_dynamic_batch_times_only_dynamic_batch_forms_and_only_where_they_differ(tmp_path):
    result = convert_model(tiny_od_net(), target="onnx", output=tmp_path / "out", imgsz=32, lowering="auto",
                           batch="dynamic")
    assert result.parity.passed, result.parity.summary()
    assert result.manifest["dynamic"]["batch"] is True
    layers = {layer["path"]: layer for layer in result.manifest["odconv_layers"]}
    # Outside depthwise layers every dynamic-batch candidate is `decomposed`: nothing to measure.
    assert layers["conv1"]["lowering"] == layers["pw"]["lowering"] == "decomposed"
    assert "auto" not in layers["conv1"] and "auto" not in layers["pw"]
    assert set(layers["dw"]["auto"]["timings_ms"]) == {"decomposed", "depthwise-taps"}
    assert layers["dw"]["lowering"] == choose_fastest(layers["dw"]["auto"]["timings_ms"], list(AUTO_CANDIDATES))


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_a_fixed_batch_is_measured_per_layer_recorded_and_cached(tmp_path, target):
    model = tiny_od_net()
    first = convert_model(model, target=target, output=tmp_path / "first", imgsz=32, lowering="auto", batch=1)
    assert first.parity.passed, first.parity.summary()
    layers = first.manifest["odconv_layers"]
    assert len(layers) == 3
    for layer in layers:
        timings = layer["auto"]["timings_ms"]
        depthwise_only = set() if layer["path"] == "dw" else set(DEPTHWISE_ONLY)
        assert set(timings) == set(AUTO_CANDIDATES) - depthwise_only
        assert all(ms > 0 for ms in timings.values())
        assert layer["lowering"] == choose_fastest(timings, list(AUTO_CANDIDATES))
    cache = json.loads(default_cache_path().read_text())
    assert any(runtime.startswith(("onnxruntime", "openvino")) for runtime in cache["timings"])

    again = convert_model(model, target=target, output=tmp_path / "again", imgsz=32, lowering="auto", batch=1)
    relayers = again.manifest["odconv_layers"]
    assert all(layer["auto"]["cached"] for layer in relayers)
    assert [layer["lowering"] for layer in relayers] == [layer["lowering"] for layer in layers]


def test_every_mix_of_fixed_batch_lowerings_exports_and_matches(tmp_path):
    """A run-time kernel behind a layer whose sizes the tracer keeps symbolic (decomposed) once failed
    to export: ONNX Conv needs the kernel's shape."""
    model = tiny_od_net()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x).numpy()
    for order in (["decomposed", "dynamic-weight", "folded-weight"], ["folded-weight", "decomposed", "dynamic-weight"]):
        names = iter(order)
        lowered, layers = lower_model(model, lambda layer: get_lowering(next(names)))
        assert [layer.lowering for layer in layers] == order
        graph = export_onnx(lowered, tmp_path / f"{order[0]}.onnx", x, dynamic_batch=False)
        (actual,) = OnnxRuntimeRunner(graph.path).infer({graph.input_name: x.numpy()}).values()
        assert np.abs(actual - expected).max() <= 1e-4 * np.abs(expected).max()


def test_cached_timings_hold_only_for_their_runtime_precision_and_cpu(tmp_path):
    cache = TimingCache(tmp_path / "timings.json")
    here = TimingContext("openvino", "2026.4.1", "f32", 2, "Some CPU")
    cache.put(here, "layer", {"decomposed": 1.0, "dynamic-weight": 0.5})
    cache.save()
    reread = TimingCache(tmp_path / "timings.json")
    assert reread.get(here, "layer") == {"decomposed": 1.0, "dynamic-weight": 0.5}
    for elsewhere in (TimingContext("openvino", "2026.4.1", "bf16", 2, "Some CPU"),
                      TimingContext("openvino", "2026.4.1", "f32", 2, "Another CPU"),
                      TimingContext("onnxruntime", "1.32.0", "f32", 2, "Some CPU")):
        assert reread.get(elsewhere, "layer") is None


def test_an_unreadable_cache_costs_a_measurement_not_an_error(tmp_path):
    (tmp_path / "timings.json").write_text("{not json")
    assert TimingCache(tmp_path / "timings.json").entries == {}


def test_near_ties_keep_constant_weights():
    order = list(AUTO_CANDIDATES)
    assert choose_fastest({"decomposed": 1.02, "dynamic-weight": 1.0, "folded-weight": 1.01}, order) == "decomposed"
    assert choose_fastest({"decomposed": 1.5, "dynamic-weight": 1.0, "folded-weight": 1.2}, order) == "dynamic-weight"


def test_a_dynamic_batch_leaves_only_the_forms_that_serve_one():
    assert [c.name for c in auto_candidates(dynamic_batch=True)] == ["decomposed", "depthwise-taps"]
    assert [c.name for c in auto_candidates(dynamic_batch=False)] == list(AUTO_CANDIDATES)


def test_unknown_lowering_names_the_choices(tmp_path):
    with pytest.raises(InputError, match="unknown lowering") as caught:
        convert_model(tiny_od_net(), target="onnx", output=tmp_path / "out", imgsz=32, lowering="fast")
    assert "auto" in caught.value.hint and "decomposed" in caught.value.hint


def test_timings_are_taken_at_the_target_precision(tmp_path):
    result = convert_model(tiny_od_net(), target="openvino", output=tmp_path / "bf16", imgsz=32, lowering="auto",
                           batch=1, precision="bf16")
    assert result.parity.passed, result.parity.summary()
    contexts = json.loads(default_cache_path().read_text())["timings"]
    assert any(key.startswith("openvino") and "|bf16|" in key for key in contexts)


def _int8_layers(result) -> tuple[dict[str, dict], set[str]]:
    """({path: manifest record} of the ODConv layers, paths of those with int8 convolutions), after checking
    that a layer in a constant-weight form was quantized and that every other one says why it stayed float."""
    layers = {layer["path"]: layer for layer in result.manifest["odconv_layers"]}
    record = result.manifest["quantization"]
    quantized = {entry["path"] for entry in record["odconv_layers_quantized"]}
    floats = {entry["path"]: entry["reason"] for entry in record["odconv_layers_float"]}
    assert quantized | set(floats) == set(layers) and not quantized & set(floats)
    for path, layer in layers.items():
        if get_lowering(layer["lowering"]).constant_weights:
            assert path in quantized, (path, layer["lowering"])
        elif path in floats:
            assert layer["lowering"] in floats[path] and "auto timed faster" in floats[path], floats[path]
    return layers, quantized


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_int8_keeps_a_layer_float_only_where_its_run_time_kernel_beat_its_int8_form(tmp_path, target):
    result = convert_model(tiny_od_net(), target=target, output=tmp_path / "int8", imgsz=32, lowering="auto",
                           batch=1, precision="int8", calibration="synthetic", calibration_size=8, verify=False)
    layers, _ = _int8_layers(result)
    for path, layer in layers.items():
        timings = layer["auto"]["timings_ms"]
        assert set(timings) == set(AUTO_CANDIDATES) - (set() if path == "dw" else set(DEPTHWISE_ONLY))
        assert layer["lowering"] == choose_fastest(timings, list(AUTO_CANDIDATES))
    assert any(key.startswith(("onnxruntime", "openvino")) and "|int8|" in key
               for key in json.loads(default_cache_path().read_text())["timings"])


def test_int8_with_a_dynamic_batch_times_only_the_forms_that_serve_one(tmp_path):
    result = convert_model(tiny_od_net(), target="openvino", output=tmp_path / "int8", imgsz=32, lowering="auto",
                           batch="dynamic", precision="int8", calibration="synthetic", calibration_size=8, verify=False)
    layers, quantized = _int8_layers(result)
    assert layers["conv1"]["lowering"] == layers["pw"]["lowering"] == "decomposed"
    assert {"conv1", "pw"} <= quantized
    assert set(layers["dw"]["auto"]["timings_ms"]) == {"decomposed", "depthwise-taps"}


@pytest.mark.parametrize("target", ["onnx", "onnxruntime", "openvino"])
def test_int8_candidates_are_timed_quantized_and_run_time_kernels_as_they_are(tmp_path, target):
    """`auto` at int8 compares a constant-weight form on its int8 kernels with a run-time-kernel form in
    float: each candidate runs as the quantized artifact would run it."""
    layer, _ = build_layer(LayerCase(in_channels=8, out_channels=8, kernel_size=3, stride=1, padding=1, dilation=1,
                                     groups=1, kernel_num=1, reduction=0.25, temperature=1.0, batch=1, height=12,
                                     width=12, seed=3))
    spec = describe_official(layer)
    feed = {"input": np.random.default_rng(1).standard_normal((1, 8, 12, 12), dtype=np.float32)}
    make_runner = get_target(target).timing_runner("int8")
    for name in ("decomposed", "dynamic-weight"):
        candidate = tmp_path / f"{name}.onnx"
        export_onnx(timing_module(spec, get_lowering(name)), candidate, torch.zeros(1, 8, 12, 12))
        runner = make_runner(candidate)
        written = sorted(path.name for path in tmp_path.glob(f"{name}.int8.*"))
        assert runner.infer(feed)[runner.output_names[0]].shape == (1, 8, 12, 12)
        if get_lowering(name).constant_weights:
            assert written and quantized_convolutions(tmp_path / written[-1]), written
        else:
            assert written == []  # nothing to quantize: timed as the float file it stays
