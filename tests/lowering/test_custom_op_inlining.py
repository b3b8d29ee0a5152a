"""docs/custom-op.md says any runtime can run a custom-op file once its functions are inlined. Every model
the suite writes with custom-op, inlined by the bare onnx.inliner (no odexport help, no OpenVINO
extension), compiles in OpenVINO and runs in ONNX Runtime with PyTorch's numbers, at batch 1 and 3."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import onnx
import onnx.inliner
import openvino as ov
import pytest
import torch
from torch import nn

import odexport
from odexport.lowering.custom_op import DOMAIN
from odexport.models import create_model, randomize_
from odexport.backends.torch import reference_runner
from odexport.backends.onnxruntime import OnnxRuntimeRunner
from odexport.backends.torch import TorchRunner
from strategies import ASYMMETRIC, LayerCase, build_layer, tiny_od_net
from test_parity import assert_close
from variants import randomize
from variants.condconv import CondConv2d
from variants.detection import TinyDetector
from variants.dyconv import Dynamic_conv2d
from variants.fused import ODConvBNAct, WrappedODConv
from variants.linear_heads import LinearHeadODConv


@dataclass(frozen=True)
class Subject:
    name: str
    build: Callable[[], nn.Module]
    in_channels: int = 3
    size: tuple[int, int] = (32, 32)
    attention_batchnorm: str | None = None


def digits_net() -> nn.Module:
    from digits import DigitsODNet

    return randomize(DigitsODNet(), seed=0)


# Not here: a routed CondConv (kernel attention given by the caller), which custom-op refuses to write
# (tests/adapters/test_routed_condconv.py).
GROUPED = LayerCase(6, 9, 3, 2, 1, 1, 3, 4, 0.25, 1.0, 2, 11, 9, 7)
SUBJECTS = [
    Subject("tiny-odnet", tiny_od_net),
    Subject("tiny-odnet-single-kernel", lambda: tiny_od_net(kernel_num=1)),
    Subject("digits-odnet", digits_net),
    Subject("tiny-detector", lambda: randomize(TinyDetector(), seed=4)),
    Subject("official-in-wrapper", lambda: randomize(WrappedODConv(4, 6, 3, 2, kernel_num=3)), 4, (12, 14)),
    Subject("fused-bn-act", lambda: randomize(ODConvBNAct(4, 6, 3, 1, g=2, kernel_num=3)), 4, (12, 14)),
    Subject("linear-heads-short", lambda: randomize(LinearHeadODConv(4, 6, 3, 2, 1, groups=2)), 4, (12, 14),
            attention_batchnorm="apply"),
    Subject("linear-heads-long", lambda: randomize(LinearHeadODConv(6, 6, 3, 1, 1, spelling="long")), 6, (12, 14),
            attention_batchnorm="skip"),
    # kernel_activation 1 (sigmoid routing) and a per-kernel bias
    Subject("condconv", lambda: randomize(CondConv2d(4, 6, 3, 2, 1, groups=2, num_experts=3)), 4, (11, 9)),
    Subject("dyconv", lambda: randomize(Dynamic_conv2d(4, 6, 3, groups=2, K=3, temperature=4.0)), 4, (12, 14)),
    # Grouped, stride 2, every attention; followed by a BatchNorm it gets the bias input.
    Subject("grouped-layer", lambda: build_layer(GROUPED)[0], 6, (11, 9)),
    Subject("grouped-layer-batchnorm", lambda: randomize(nn.Sequential(build_layer(GROUPED)[0], nn.BatchNorm2d(9))),
            6, (11, 9)),
    Subject("asymmetric-layer", lambda: build_layer(ASYMMETRIC)[0], 4, (13, 10)),
    Subject("od_mobilenetv2_050", lambda: randomize_(create_model("od_mobilenetv2_050", kernel_num=4, num_classes=10),
                                                     seed=0).eval(), 3, (48, 48)),
]


def inlined_custom_op_file(subject: Subject, module: nn.Module, directory) -> tuple[onnx.ModelProto, list[str]]:
    """The custom-op export of ``module``, every function inlined by onnx.inliner; and its output names."""
    x = torch.randn(1, subject.in_channels, *subject.size, generator=torch.Generator().manual_seed(1))
    result = odexport.convert(module, x, target="onnx", lowering="custom-op", output=directory / "out",
                              attention_batchnorm=subject.attention_batchnorm, preprocessing=None, verify=False)
    model = onnx.load(result.model_file)
    assert any(node.domain == DOMAIN for node in model.graph.node), "custom-op wrote no ODConv2d node"
    inlined = onnx.inliner.inline_local_functions(model)
    assert not inlined.functions and not any(node.domain == DOMAIN for node in inlined.graph.node)
    onnx.checker.check_model(inlined, full_check=True)
    return inlined, [output.name for output in inlined.graph.output]


@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda s: s.name)
def test_bare_inlined_custom_op_file_runs_everywhere_with_pytorch_numbers(subject, tmp_path):
    module = subject.build()
    inlined, output_names = inlined_custom_op_file(subject, module, tmp_path)
    path = tmp_path / "inlined.onnx"
    onnx.save(inlined, path)
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    onnxruntime = OnnxRuntimeRunner(path)
    reference = reference_runner(TorchRunner(module, ("input",), tuple(output_names)), subject.attention_batchnorm)
    for batch in (1, 3):
        sample = np.random.default_rng(batch).standard_normal((batch, subject.in_channels, *subject.size),
                                                              dtype=np.float32)
        expected = reference.infer({"input": sample})
        runtimes = {"openvino": dict(zip(output_names, compiled(sample).to_tuple())),
                    "onnxruntime": onnxruntime.infer({"input": sample})}
        for runtime, outputs in runtimes.items():
            for name in output_names:
                assert_close(outputs[name], expected[name], f"{subject.name} in {runtime}, {name}, batch {batch}")
