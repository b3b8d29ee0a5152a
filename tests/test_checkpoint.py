"""Loading checkpoints: the official training format, state dicts, TorchScript, pickled modules, errors.

Files are real and written to tmp_path; models come from the zoo with seeded random weights. Inference over
every architecture uses meta-device state dicts, which have shapes but no data, so it costs nothing.
"""

from __future__ import annotations

import copy
import hashlib
import pickle
import re

import pytest
import torch

from odexport import models
from odexport.checkpoint import (LoadedCheckpoint, ModelSpec, infer_spec, load_checkpoint,
                                 save_official_checkpoint)
from odexport.errors import CheckpointError, UnknownArchitectureError

NUM_CLASSES = 10
MAKES_TORCHSCRIPT = pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:DeprecationWarning")
SMALL_OD = "od_mobilenetv2_050"  # the cheapest ODConv model: the workhorse of these tests


def zoo_model(arch: str, kernel_num: int = 1, reduction: float = 0.0625, seed: int = 0) -> torch.nn.Module:
    options = {"kernel_num": kernel_num, "reduction": reduction} if models.get_arch(arch).odconv else {}
    model = models.create_model(arch, num_classes=NUM_CLASSES, **options)
    return models.randomize_(model, seed, example_input=torch.randn(2, 3, 32, 32)).eval()  # small: fast


def meta_state_dict(arch: str, kernel_num: int = 1, reduction: float = 0.0625) -> dict[str, torch.Tensor]:
    options = {"kernel_num": kernel_num, "reduction": reduction} if models.get_arch(arch).odconv else {}
    with torch.device("meta"):
        return models.create_model(arch, num_classes=NUM_CLASSES, **options).state_dict()


def assert_same_weights(loaded: LoadedCheckpoint, model: torch.nn.Module) -> None:
    expected, actual = model.state_dict(), loaded.model.state_dict()
    assert expected.keys() == actual.keys()
    for key, value in expected.items():
        assert torch.equal(actual[key], value), key


@pytest.fixture(scope="module")
def small_od() -> torch.nn.Module:
    return zoo_model(SMALL_OD, kernel_num=4, reduction=0.25)


@pytest.fixture(scope="module")
def official_file(tmp_path_factory, small_od):
    path = tmp_path_factory.mktemp("official") / "checkpoint.pth.tar"
    return save_official_checkpoint(small_od, path, epoch=7, acc=71.5, best_acc=72.25)


# --- the official format ------------------------------------------------------------------------------

def test_save_writes_the_official_format(official_file, small_od):
    before = {k: v.clone() for k, v in small_od.state_dict().items()}
    raw = torch.load(official_file, map_location="cpu", weights_only=True)
    assert set(raw) == {"epoch", "state_dict", "acc", "best_acc", "optimizer"}
    assert all(key.startswith("module.") for key in raw["state_dict"])
    assert isinstance(raw["acc"], torch.Tensor) and isinstance(raw["best_acc"], torch.Tensor)
    group = raw["optimizer"]["param_groups"][0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.1, 0.9, 1e-4)
    buffers = [state["momentum_buffer"] for state in raw["optimizer"]["state"].values()]
    assert len(buffers) == len(list(small_od.parameters())) and any(b.abs().sum() > 0 for b in buffers)
    assert all(torch.equal(before[k], v) for k, v in small_od.state_dict().items())  # model untouched


def test_round_trip(official_file, small_od):
    loaded = load_checkpoint(official_file)
    assert (loaded.arch, loaded.kernel_num, loaded.reduction, loaded.num_classes) == (SMALL_OD, 4, 0.25, NUM_CLASSES)
    assert loaded.source_format == "official-checkpoint"
    assert loaded.metadata == {"epoch": 7, "acc": 71.5, "best_acc": 72.25}
    assert loaded.sha256 == hashlib.sha256(official_file.read_bytes()).hexdigest()
    assert not loaded.model.training
    assert_same_weights(loaded, small_od)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded.model(x), small_od(x))
    notes = " | ".join(loaded.inferred)
    assert f"arch {SMALL_OD} (stem features.0.0.weight with 16 output channels, ODConv weights)" in notes
    assert "kernel_num 4 (from features.1.conv.0.0.weight [4, " in notes
    assert "'module.' prefix" in notes and "num_classes 10 (from classifier.1.weight [10, " in notes


def test_explicit_arguments_that_fit_are_used(official_file):
    loaded = load_checkpoint(official_file, arch=SMALL_OD, kernel_num=4, reduction=0.25, num_classes=NUM_CLASSES)
    assert (loaded.arch, loaded.kernel_num, loaded.reduction) == (SMALL_OD, 4, 0.25)
    assert not any(note.startswith(("arch", "kernel_num", "reduction", "num_classes")) for note in loaded.inferred)


def test_always_loads_weights_only_onto_cpu(official_file, monkeypatch):
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_checkpoint(official_file)
    assert calls == [{"map_location": "cpu", "weights_only": True}]  # CUDA-saved tensors land on the CPU


# --- inference over the whole zoo ---------------------------------------------------------------------

ZOO_CASES = [pytest.param(arch, k, id=f"{arch}-k{k}") for arch in models.list_models()
             for k in ((1, 4) if models.get_arch(arch).odconv else (1,))]


@pytest.mark.parametrize("arch, kernel_num", ZOO_CASES)
def test_infers_every_zoo_arch(arch, kernel_num):
    spec = infer_spec(meta_state_dict(arch, kernel_num))
    assert (spec.arch, spec.kernel_num, spec.reduction, spec.num_classes) == (arch, kernel_num, 0.0625, NUM_CLASSES)
    assert spec.inferred[0].startswith(f"arch {arch} (")


@pytest.mark.parametrize("arch", models.list_models(odconv=True))
def test_infers_a_non_default_reduction(arch):
    spec = infer_spec(meta_state_dict(arch, kernel_num=4, reduction=0.25))
    assert (spec.arch, spec.kernel_num, spec.reduction) == (arch, 4, 0.25)
    assert any(note.startswith("reduction 0.25 (the only standard value") for note in spec.inferred)


@pytest.mark.parametrize("arch", ["resnet18", "mobilenetv2_100", "od_resnet18", "od_resnet101"])
def test_loads_zoo_archs_from_files(tmp_path, arch):
    model = zoo_model(arch)
    path = save_official_checkpoint(model, tmp_path / "checkpoint.pth.tar")
    loaded = load_checkpoint(path)
    assert (loaded.arch, loaded.kernel_num, loaded.num_classes) == (arch, 1, NUM_CLASSES)
    assert_same_weights(loaded, model)


@pytest.mark.parametrize("reduction", [0.03, 0.3])
def test_off_grid_reduction_picks_a_value_that_builds_the_same_model(reduction):
    state_dict = meta_state_dict("od_resnet18", reduction=reduction)
    spec = infer_spec(state_dict)
    assert any("no standard value fits" in note for note in spec.inferred)
    rebuilt = meta_state_dict("od_resnet18", reduction=spec.reduction)
    assert {k: v.shape for k, v in rebuilt.items()} == {k: v.shape for k, v in state_dict.items()}


def _attention_only(widths: dict[str, tuple[int, int]], kernel_num: int = 4) -> dict[str, torch.Tensor]:
    """A hand-made ResNet fragment: layer -> (in channels, attention channels)."""
    state_dict = {"fc.weight": torch.empty(NUM_CLASSES, 512, device="meta")}
    for layer, (c, a) in widths.items():
        state_dict[f"{layer}.weight"] = torch.empty(kernel_num, c, c, 3, 3, device="meta")
        state_dict[f"{layer}.attention.fc.weight"] = torch.empty(a, c, 1, 1, device="meta")
    return state_dict


def test_reduction_is_ambiguous_when_every_layer_is_at_the_minimum():
    state_dict = _attention_only({"layer1.0.conv1": (64, 16), "layer2.0.conv1": (128, 16)})
    spec = infer_spec(state_dict, arch="od_resnet18")
    assert (spec.reduction, spec.kernel_num) == (0.0625, 4)
    note = next(note for note in spec.inferred if note.startswith("reduction"))
    assert "ambiguous" in note and "16-channel attention minimum" in note and "does not change the model" in note


@pytest.mark.parametrize("widths, words", [
    ({"layer1.0.conv1": (64, 32), "layer2.0.conv1": (128, 20)}, "no single reduction"),
    ({"layer1.0.conv1": (64, 8)}, "below ODConv's minimum"),
])
def test_attention_widths_that_no_reduction_gives(widths, words):
    with pytest.raises(CheckpointError, match=words):
        infer_spec(_attention_only(widths), arch="od_resnet18", source="w.pth")


def test_kernel_num_must_agree_across_layers():
    state_dict = meta_state_dict("od_resnet18", kernel_num=4)
    state_dict["layer2.0.conv1.weight"] = torch.empty(2, 128, 64, 3, 3, device="meta")
    with pytest.raises(CheckpointError, match=r"disagree on kernel_num: .* has 4, layer2.0.conv1.weight has 2"):
        infer_spec(state_dict)


# --- other containers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("wrap, source_format, note", [
    (lambda sd: sd, "state-dict", None),
    (lambda sd: {f"module.{k}": v for k, v in sd.items()}, "state-dict", "'module.' prefix"),
    (lambda sd: {f"module._orig_mod.{k}": v for k, v in sd.items()}, "state-dict", "'_orig_mod.' prefix"),
    (lambda sd: {"model": sd, "epoch": 3}, "state-dict", "'model' entry"),
    (lambda sd: {"model_state_dict": sd}, "state-dict", "'model_state_dict' entry"),
    (lambda sd: {"state_dict": sd}, "official-checkpoint", None),
])
def test_state_dict_containers(tmp_path, small_od, wrap, source_format, note):
    path = tmp_path / "weights.pth"
    torch.save(wrap(small_od.state_dict()), path)
    loaded = load_checkpoint(path)
    assert (loaded.arch, loaded.kernel_num, loaded.source_format) == (SMALL_OD, 4, source_format)
    assert note is None or any(note in n for n in loaded.inferred)
    assert_same_weights(loaded, small_od)


@MAKES_TORCHSCRIPT
def test_torchscript_archive(tmp_path, small_od):
    path = tmp_path / "traced.pt"
    torch.jit.save(torch.jit.trace(small_od, torch.randn(1, 3, 32, 32), check_trace=False), path)
    loaded = load_checkpoint(path)
    assert loaded.source_format == "torchscript"
    assert (loaded.arch, loaded.kernel_num, loaded.reduction) == (SMALL_OD, 4, 0.25)
    assert_same_weights(loaded, small_od)


def test_pickled_module_needs_the_unsafe_flag(tmp_path, small_od):
    path = tmp_path / "whole_model.pth"
    torch.save(small_od, path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert str(path) in message and "pickled Python objects" in message
    assert "--unsafe-pickle" in message and "arbitrary code" in message
    loaded = load_checkpoint(path, unsafe_pickle=True)
    assert (loaded.arch, loaded.source_format) == (SMALL_OD, "pickled-module")
    assert_same_weights(loaded, small_od)


# --- errors -------------------------------------------------------------------------------------------

def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make, words", [
    (lambda d: d / "missing.pth", "no such file"),
    (lambda d: d, "is a directory"),
    (lambda d: _write(d / "empty.pth", b""), "is empty"),
    (lambda d: _write(d / "notes.txt", b"epoch 90, top-1 77.8\n"), "not a PyTorch checkpoint"),
    (lambda d: _write(d / "image.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256))), "not a PyTorch checkpoint"),
])
def test_unusable_files(tmp_path, make, words):
    path = make(tmp_path)
    with pytest.raises(CheckpointError, match=words) as caught:
        load_checkpoint(path)
    assert str(path) in str(caught.value) and caught.value.hint


def _save_zip(model, path):
    torch.save({"state_dict": model.state_dict()}, path)


def _save_legacy(model, path):  # the pre-1.6 format: a bare pickle stream, no zip archive
    torch.save({"state_dict": model.state_dict()}, path, _use_new_zipfile_serialization=False)


def _save_torchscript(model, path):  # any archive will do: it is cut in half
    torch.jit.save(torch.jit.script(torch.nn.Linear(64, 8)), path)


@MAKES_TORCHSCRIPT
@pytest.mark.parametrize("save", [_save_zip, _save_legacy, _save_torchscript])
def test_truncated_files(tmp_path, small_od, save):
    path = tmp_path / "checkpoint.pth.tar"
    save(small_od, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as caught:
        load_checkpoint(path)
    assert str(path) in str(caught.value)


def test_no_state_dict_inside(tmp_path):
    path = tmp_path / "log.pth"
    torch.save({"epoch": 3, "losses": [1.0, 0.5]}, path)
    with pytest.raises(CheckpointError, match=r"holds a dict with keys epoch, losses, and no state dict"):
        load_checkpoint(path)


def test_unknown_architecture_names_the_keys(tmp_path):
    path = tmp_path / "vit.pth"
    torch.save({"patch_embed.proj.weight": torch.zeros(8, 3, 4, 4), "head.weight": torch.zeros(2, 8)}, path)
    with pytest.raises(UnknownArchitectureError, match="match no zoo family") as caught:
        load_checkpoint(path)
    assert "patch_embed.proj.weight" in str(caught.value) and str(path) in str(caught.value)


def test_resnet_of_unknown_depth():
    state_dict = {k: v for k, v in meta_state_dict("resnet18").items() if not k.startswith("layer4.1.")}
    with pytest.raises(UnknownArchitectureError, match=r"BasicBlock layers \[2, 2, 2, 1\] match no zoo model"):
        infer_spec(state_dict)


def test_unknown_arch_name_lists_the_known_ones(official_file):
    with pytest.raises(UnknownArchitectureError, match="unknown architecture 'od_resnet19'") as caught:
        load_checkpoint(official_file, arch="od_resnet19")
    assert all(name in str(caught.value) for name in models.list_models())


@pytest.mark.parametrize("options, words", [
    ({"arch": "od_mobilenetv2_075"}, [r"shape mismatches \(features\.0\.0\.weight checkpoint \[16, 3, 3, 3\] "
                                      r"vs model \[24, 3, 3, 3\]"]),
    ({"kernel_num": 2}, [r"kernel_num 2", r"checkpoint \[4, .*\] vs model \[2, "]),
    ({"reduction": 0.0625}, [r"attention\.fc\.weight checkpoint \[\d+, \d+, 1, 1\] vs model"]),
    ({"num_classes": 5}, [r"classifier\.1\.weight checkpoint \[10, 1280\] vs model \[5, 1280\]"]),
    ({"arch": "mobilenetv2_050"}, [r"\d+ unexpected keys \(features\.1\.conv\.0\.0\.attention"]),
    ({"arch": "od_resnet18"}, [r"\d+ missing keys \(conv1\.weight", r"\d+ unexpected keys \(features\."]),
])
def test_explicit_arguments_that_do_not_fit(official_file, options, words):
    with pytest.raises(CheckpointError, match="weights do not fit") as caught:
        load_checkpoint(official_file, **options)
    for pattern in words:
        assert re.search(pattern, str(caught.value)), pattern
    assert str(official_file) in str(caught.value)


def test_static_weights_under_an_odconv_name_report_missing_keys(tmp_path):
    path = save_official_checkpoint(zoo_model("mobilenetv2_050"), tmp_path / "static.pth.tar")
    with pytest.raises(CheckpointError, match=r"missing keys \(features\.1\.conv\.0\.0\.attention"):
        load_checkpoint(path, arch="od_mobilenetv2_050")


def test_kernel_num_for_a_static_arch(tmp_path):
    path = save_official_checkpoint(zoo_model("mobilenetv2_050"), tmp_path / "static.pth.tar")
    with pytest.raises(CheckpointError, match="kernel_num 4 given, but mobilenetv2_050 has no ODConv layers"):
        load_checkpoint(path, kernel_num=4)


def test_spec_is_plain_data():
    spec = infer_spec(meta_state_dict("resnet18"))
    assert spec == ModelSpec("resnet18", 1, 0.0625, NUM_CLASSES, spec.inferred)


def test_a_prefix_on_only_some_keys_is_kept(tmp_path, small_od):
    state_dict = dict(small_od.state_dict())
    state_dict["module.classifier.1.bias"] = state_dict.pop("classifier.1.bias")
    path = tmp_path / "mixed.pth"
    torch.save(state_dict, path)
    with pytest.raises(CheckpointError, match=r"1 missing keys \(classifier\.1\.bias\); "
                                              r"1 unexpected keys \(module\.classifier\.1\.bias\)"):
        load_checkpoint(path)


# --- weights that load but cannot mean anything -------------------------------------------------------

def _damaged(model: torch.nn.Module, key: str, damage) -> dict[str, torch.Tensor]:
    state_dict = {k: v.clone() for k, v in model.state_dict().items()}
    state_dict[key] = damage(state_dict[key])
    return state_dict


def _with_nan(tensor: torch.Tensor) -> torch.Tensor:
    tensor.view(-1)[tensor.numel() // 2] = float("nan")
    return tensor


def _with_inf(tensor: torch.Tensor) -> torch.Tensor:
    tensor.view(-1)[0] = float("-inf")
    return tensor


CONV = "features.1.conv.0.0.weight"  # an ODConv kernel stack of the small model


@pytest.mark.parametrize("key, damage, words", [
    (CONV, lambda t: t.to(torch.int64), f"state_dict key '{CONV}' holds torch.int64 values where the model has "
                                        "torch.float32"),
    ("features.0.1.running_var", lambda t: t.to(torch.int32), "'features.0.1.running_var' holds torch.int32"),
    (CONV, _with_nan, f"state_dict key '{CONV}' holds NaN"),
    ("features.0.1.running_mean", _with_nan, "state_dict key 'features.0.1.running_mean' holds NaN"),
    ("classifier.1.bias", _with_inf, "state_dict key 'classifier.1.bias' holds inf"),
])
def test_bad_weight_values_are_refused_naming_the_key(tmp_path, small_od, key, damage, words):
    path = tmp_path / "damaged.pth.tar"
    torch.save({"state_dict": _damaged(small_od, key, damage)}, path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert words in caught.value.message and str(path) in caught.value.message
    assert caught.value.hint and caught.value.exit_code == 2


def test_integer_batchnorm_counters_are_legitimate(tmp_path, small_od):
    counters = [k for k, v in small_od.state_dict().items() if k.endswith("num_batches_tracked")]
    assert counters and all(small_od.state_dict()[k].dtype == torch.int64 for k in counters)
    path = tmp_path / "plain.pth"
    torch.save(small_od.state_dict(), path)
    assert_same_weights(load_checkpoint(path), small_od)


def test_double_precision_weights_still_load(tmp_path, small_od):
    path = tmp_path / "double.pth"
    torch.save({k: v.double() if v.is_floating_point() else v for k, v in small_od.state_dict().items()}, path)
    assert load_checkpoint(path).model.features[0][0].weight.dtype == torch.float32


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors:UserWarning")
def test_a_classifier_with_zero_classes_is_refused(tmp_path):
    model = models.create_model("mobilenetv2_050", num_classes=0)
    path = save_official_checkpoint(model, tmp_path / "empty_head.pth.tar")
    with pytest.raises(CheckpointError, match=r"'classifier\.1\.weight' \[0, 1280\] is a classifier with zero "
                                              r"classes"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="num_classes 0 is not a positive count"):
        infer_spec(meta_state_dict("resnet18"), num_classes=0)


def test_a_pickled_module_with_nan_is_refused(tmp_path, small_od):
    from odexport.checkpoint import read_module

    broken = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    with torch.no_grad():
        broken[0].bias[1] = float("nan")
    path = tmp_path / "whole.pth"
    torch.save(broken, path)
    with pytest.raises(CheckpointError, match=r"state_dict key '0\.bias' holds NaN"):
        read_module(path, unsafe_pickle=True)
    zoo = tmp_path / "whole_zoo.pth"
    damaged = copy.deepcopy(small_od)
    damaged.load_state_dict(_damaged(small_od, CONV, _with_nan))
    torch.save(damaged, zoo)
    with pytest.raises(CheckpointError, match=f"'{CONV}' holds NaN"):
        load_checkpoint(zoo, unsafe_pickle=True)


# --- pickles the weights-only loader refuses ----------------------------------------------------------

def _pickle_dump(model, path):  # pickle itself, not torch.save: no zip archive, no torch header
    with open(path, "wb") as file:
        pickle.dump({"state_dict": model.state_dict()}, file)


def _save_legacy_protocol_4(model, path):  # the legacy format in a pickle protocol the safe loader cannot parse
    torch.save({"state_dict": model.state_dict()}, path, _use_new_zipfile_serialization=False, pickle_protocol=4)


@pytest.mark.parametrize("save, words", [
    (_pickle_dump, "is a plain Python pickle"),
    (_save_legacy_protocol_4, "is a pickle in torch.save's legacy (pre-1.6) format"),
])
def test_a_whole_pickle_is_named_as_such_and_loads_with_the_unsafe_flag(tmp_path, small_od, save, words):
    path = tmp_path / "checkpoint.pkl"
    save(small_od, path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert words in caught.value.message and "truncated" not in str(caught.value)
    assert "--unsafe-pickle" in caught.value.hint and "runs arbitrary code" in caught.value.hint
    assert "trust" in caught.value.hint
    assert_same_weights(load_checkpoint(path, unsafe_pickle=True), small_od)


@pytest.mark.parametrize("unsafe_pickle", [False, True])
@pytest.mark.parametrize("save", [_pickle_dump, _save_legacy_protocol_4])
@pytest.mark.parametrize("kept", [0.5, 0.999])  # cut in the pickle, or in the tensor data after it
def test_a_truncated_pickle_is_still_truncated(tmp_path, small_od, save, unsafe_pickle, kept):
    path = tmp_path / "checkpoint.pkl"
    save(small_od, path)
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * kept)])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path, unsafe_pickle=unsafe_pickle)
