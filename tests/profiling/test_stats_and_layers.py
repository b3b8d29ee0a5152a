"""The pure parts of profiling: latency statistics, and node names read back as module paths and kinds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from odexport.inspection import onnx_scope
from odexport.profiling.layers import (ATTENTION, CONVOLUTION, OTHER, TOP_LEVEL, UNATTRIBUTED, NodeTime, breakdown,
                                       classify, module_path, places)
from odexport.profiling.stats import LatencyStats


@given(st.lists(st.floats(min_value=1e-6, max_value=10.0), min_size=1, max_size=300))
def test_statistics_are_ordered_and_counted(seconds):
    stats = LatencyStats.from_seconds(seconds)
    assert stats.count == len(seconds)
    assert stats.min_ms <= stats.median_ms <= stats.p90_ms <= stats.p99_ms <= stats.max_ms
    assert stats.min_ms <= stats.mean_ms * (1 + 1e-12) and stats.mean_ms <= stats.max_ms * (1 + 1e-12)
    assert stats.min_ms == min(seconds) * 1e3 and stats.max_ms == max(seconds) * 1e3


@given(st.lists(st.sampled_from(["layer1", "0", "conv1", "attention", "features", "12", "fc"]), min_size=1, max_size=6))
def test_module_path_inverts_the_exporter_scope(parts):
    path = ".".join(parts)
    if parts[0].isdigit():  # a top-level module is an attribute, never a bare index
        return
    assert module_path(onnx_scope(path) + "Conv_3") == path
    assert module_path(onnx_scope(path) + "Conv/WithoutBiases") == path  # OpenVINO's split-off bias


def test_runtime_added_names():
    assert module_path("/stem/stem.0/Conv/WithoutBiases_acdb_abcd_/conv1/Mul") == "stem.0"  # a layout reorder
    assert module_path("/Add") == ""
    assert module_path("Slice_0") is None


def test_classify_by_odconv_layer():
    layers = ["layer1.0.conv1", "conv"]
    assert classify("layer1.0.conv1.attention.fc", layers) == ("layer1.0.conv1", ATTENTION)
    assert classify("layer1.0.conv1", layers) == ("layer1.0.conv1", CONVOLUTION)
    assert classify("layer1.0.conv10", layers) == ("layer1.0.conv10", OTHER)
    assert classify("convert", layers) == ("convert", OTHER)
    assert classify("", layers) == (TOP_LEVEL, OTHER)
    assert classify(None, layers) == (UNATTRIBUTED, OTHER)


def test_places_follow_consumers_then_producers():
    graph = [  # (name, inputs, outputs, names it was made of)
        ("/conv1/Pad", ["x"], ["padded"], ["/conv1/Pad"]),
        ("Slice_0", ["padded"], ["tap"], ["Slice_0"]),            # onnxsim's: serves /conv1/Concat
        ("/conv1/Concat", ["tap"], ["cat"], ["/conv1/Concat"]),
        ("Fused_1", ["cat"], ["y"], ["Fused_1", "/head/Gemm"]),   # a fusion keeps the fused node's names
        ("Reorder_9", ["cat"], ["out"], [""]),                     # feeds nothing scoped: its producer's
    ]
    found = places(graph)
    assert found["Slice_0"] == "/conv1/Concat"
    assert found["Reorder_9"] == "/conv1/Concat"
    assert found["Fused_1"] == "/head/Gemm"


def test_breakdown_sums_and_flags_reference_kernels():
    nodes = [NodeTime("/conv1/attention/fc/Conv", "Convolution", "brgconv_avx512_f32", 1.0),
             NodeTime("/conv1/Conv", "Convolution", "brgconv_avx512_f32", 3.0),
             NodeTime("Slice_0", "Slice", "ref_f32", 0.5),
             NodeTime("/fc/Gemm", "FullyConnected", "brgemm_avx512_f32", 2.0),
             NodeTime("Reorder_1", "Reorder", "jit_uni_f32", 0.25)]
    result = breakdown("openvino", 10, nodes, {"Slice_0": "/conv1/Concat"}, ["conv1"])
    assert result.by_category == {ATTENTION: 1.0, CONVOLUTION: 3.5, OTHER: 2.25}
    assert result.total_ms == sum(node.ms for node in nodes)
    assert [(row.module, row.category) for row in result.layers][:2] == [("conv1", CONVOLUTION), ("fc", OTHER)]
    assert [node.name for node in result.reference_kernels] == ["Slice_0"]
    # What each module's nodes are, beside the kernels that ran them: "ref_f32" does not say "Slice".
    by_module = {(row.module, row.category): row for row in result.layers}
    assert by_module[("conv1", CONVOLUTION)].op_ms == {"Convolution": 3.0, "Slice": 0.5}
    assert by_module[("conv1", CONVOLUTION)].exec_types == ("brgconv_avx512_f32", "ref_f32")
