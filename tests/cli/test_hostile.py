"""Hostile input over the command line, as a careless or malicious user would give it.

Every case asserts what a user relies on when odexport runs in CI: the exit code (2 for bad input, 1 for a
parity failure, never 3 or 0), one error line and no traceback, and that the output path and the user's
files are exactly as they were (contents and permission bits). The cases are grouped by what goes wrong:
the checkpoint, an option value, the artifact's manifest, the output path, the weights' provenance, and
an interrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from odexport.checkpoint import save_official_checkpoint
from odexport.cli.app import app
from odexport.models import create_model, randomize_

ARCH = "od_mobilenetv2_050"  # the smallest zoo model with ODConv layers
runner = CliRunner()


def run_cli(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


def assert_refused(result, exit_code: int = 2) -> str:
    """The exit code, one `error:` line, no traceback, no internal error; -> the error line."""
    output = result.stderr + result.stdout
    assert result.exit_code == exit_code, (result.exit_code, output[-2000:])
    assert "Traceback" not in output, output[-2000:]
    assert "internal error" not in output, output[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-2000:]
    return errors[0]


def tree_state(root: Path) -> dict[str, tuple[int, str]]:
    """{relative path: (mode, sha256 or 'dir')} of everything below ``root``, ``root`` itself included."""
    state = {".": (root.lstat().st_mode, "dir")} if root.exists() else {}
    for path in sorted(root.rglob("*")) if root.is_dir() and not root.is_symlink() else []:
        digest = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        state[str(path.relative_to(root))] = (path.lstat().st_mode, digest)
    return state


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A small official-format checkpoint with seeded random weights and BatchNorm statistics."""
    with torch.no_grad():
        model = randomize_(create_model(ARCH, kernel_num=1, num_classes=10), seed=0)
    path = tmp_path_factory.mktemp("hostile-ckpt") / "model.pth.tar"
    save_official_checkpoint(model, path)
    return path


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, checkpoint) -> Path:
    out = tmp_path_factory.mktemp("hostile-artifact") / "model_onnx"
    # decomposed: what verify is given here matters, not how its layers were lowered; with auto, which
    # times od_mobilenetv2_050's layers first, this fixture took 19-25 s (`bash scripts/test.sh --durations=30`).
    result = run_cli("convert", checkpoint, "--target", "onnx", "--imgsz", "32", "-o", out, "--no-verify",
                     "--lowering", "decomposed")
    assert result.exit_code == 0, result.stderr
    return out


@pytest.fixture
def user_dir(tmp_path) -> Path:
    """A user's project: source files, a manifest.json of their own, a subfolder; mode 0755."""
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print('hello')\n")
    (root / "README.md").write_text("# my project\n")
    (root / "manifest.json").write_text(json.dumps({"name": "my-app", "version": "1.0"}))
    root.chmod(0o755)
    return root


# --- 1. Bad checkpoints: refused at load, before any export ---------------------------------------------------

def _state_dict(checkpoint: Path) -> dict:
    return torch.load(checkpoint, weights_only=True)["state_dict"]


def _save_state(path: Path, state: dict) -> Path:
    torch.save({"epoch": 1, "state_dict": state, "acc": 0.0, "best_acc": 0.0, "optimizer": {}}, path)
    return path


def _with(checkpoint: Path, path: Path, change) -> Path:
    state = _state_dict(checkpoint)
    change(state)
    return _save_state(path, state)


def _first_float_weight(state: dict) -> str:
    return next(key for key, value in state.items() if key.endswith("weight") and value.is_floating_point())


def _classifier(state: dict) -> str:
    return next(key for key in state if key.endswith("weight") and "classifier" in key or key == "fc.weight")


def _bad_checkpoints() -> dict:
    def nan(state):
        state[_first_float_weight(state)][0].flatten()[0] = float("nan")

    def inf(state):
        state[_first_float_weight(state)].flatten()[-1] = float("inf")

    def int64(state):
        for key, value in list(state.items()):
            state[key] = (value * 1000).long() if value.is_floating_point() else value

    def zero_classes(state):
        weight_key = _classifier(state)
        state[weight_key] = state[weight_key][:0]
        state[weight_key.replace("weight", "bias")] = state[weight_key.replace("weight", "bias")][:0]

    def wrong_shape(state):
        key = _first_float_weight(state)
        state[key] = torch.zeros(*(d + 1 for d in state[key].shape))

    def missing_key(state):
        del state[_first_float_weight(state)]

    return {
        "empty-file": lambda ckpt, p: (p.write_bytes(b""), p)[1],
        "random-bytes": lambda ckpt, p: (p.write_bytes(os.urandom(4096)), p)[1],
        "text": lambda ckpt, p: (p.write_text("not weights\n"), p)[1],
        "json": lambda ckpt, p: (p.write_text(json.dumps({"state_dict": {}})), p)[1],
        "truncated": lambda ckpt, p: (p.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 3]), p)[1],
        "zip-without-data": lambda ckpt, p: (zipfile.ZipFile(p, "w").close(), p)[1],
        "plain-pickle": lambda ckpt, p: (p.write_bytes(pickle.dumps({"weights": [1.0, 2.0]})), p)[1],
        "legacy-format-whole-module": lambda ckpt, p: (
            torch.save(create_model(ARCH, kernel_num=1, num_classes=10), p, _use_new_zipfile_serialization=False), p)[1],
        "a-tensor": lambda ckpt, p: (torch.save(torch.zeros(3), p), p)[1],
        "no-tensors": lambda ckpt, p: (torch.save({"epoch": 3, "acc": 1.0}, p), p)[1],
        "empty-state-dict": lambda ckpt, p: _save_state(p, {}),
        "nan-weight": lambda ckpt, p: _with(ckpt, p, nan),
        "inf-weight": lambda ckpt, p: _with(ckpt, p, inf),
        "int64-weights": lambda ckpt, p: _with(ckpt, p, int64),
        "zero-classes": lambda ckpt, p: _with(ckpt, p, zero_classes),
        "wrong-shape": lambda ckpt, p: _with(ckpt, p, wrong_shape),
        "missing-key": lambda ckpt, p: _with(ckpt, p, missing_key),
    }


BAD_CHECKPOINTS = _bad_checkpoints()


@pytest.mark.parametrize("verify", ["--verify", "--no-verify"])
@pytest.mark.parametrize("kind", sorted(BAD_CHECKPOINTS))
def test_a_bad_checkpoint_is_refused_before_export(kind, verify, checkpoint, tmp_path):
    bad = BAD_CHECKPOINTS[kind](checkpoint, tmp_path / f"{kind}.pth.tar")
    out = tmp_path / "out"
    result = run_cli("convert", bad, "--target", "onnx", "--imgsz", "32", "-o", out, verify)
    assert_refused(result)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([bad.name])


@pytest.mark.parametrize("kind", ["nan-weight", "int64-weights", "zero-classes", "plain-pickle", "truncated"])
def test_inspect_and_verify_refuse_a_bad_checkpoint(kind, checkpoint, artifact, tmp_path):
    bad = BAD_CHECKPOINTS[kind](checkpoint, tmp_path / f"{kind}.pth.tar")
    assert_refused(run_cli("inspect", bad))
    assert_refused(run_cli("verify", artifact, "-c", bad))


def test_a_pickle_is_named_a_pickle_with_its_risk(checkpoint, tmp_path):
    bad = BAD_CHECKPOINTS["plain-pickle"](checkpoint, tmp_path / "plain.pkl")
    line = assert_refused(run_cli("convert", bad, "-o", tmp_path / "out")).lower()
    assert "pickle" in line and "truncated" not in line
    result = run_cli("convert", bad, "-o", tmp_path / "out")
    assert "--unsafe-pickle" in result.stderr


def test_a_nan_weight_is_named_by_its_key(checkpoint, tmp_path):
    bad = BAD_CHECKPOINTS["nan-weight"](checkpoint, tmp_path / "nan.pth.tar")
    key = _first_float_weight(_state_dict(checkpoint)).removeprefix("module.")  # as the model names it
    result = run_cli("convert", bad, "-o", tmp_path / "out", "--no-verify")
    assert key in assert_refused(result) + result.stderr


# --- 2. Option values: refused before the checkpoint is read ---------------------------------------------------

BAD_OPTIONS = [
    ("--imgsz", "0"), ("--imgsz", "-5"), ("--imgsz", "100000"), ("--imgsz", "abc"), ("--imgsz", "224,"),
    ("--imgsz", "1,2,3"), ("--imgsz", "3.5"), ("--imgsz", "65536,65536"),
    ("--batch", "0"), ("--batch", "-1"), ("--batch", "abc"), ("--batch", "100000000"), ("--batch", "1.5"),
    ("--precision", "fp64"), ("--precision", "fp8"), ("--precision", ""),
    ("--target", "tensorrt"), ("--target", ""),
    ("--lowering", "magic"),
    ("--layout", "nested"),
    ("--calibration-size", "0"), ("--calibration-size", "-3"), ("--calibration-size", "10000000000"),
    ("--temperature", "0"), ("--temperature", "-1"), ("--temperature", "nan"), ("--temperature", "inf"),
    ("--channels", "0"), ("--channels", "-1"), ("--channels", "100000"),
    ("--attention-batchnorm", "maybe"),
]


@pytest.mark.parametrize(("option", "value"), BAD_OPTIONS, ids=[f"{o}={v}" for o, v in BAD_OPTIONS])
def test_a_bad_option_value_is_refused_before_the_checkpoint_is_read(option, value, tmp_path):
    """The checkpoint does not exist: the option's error must come first, naming the option."""
    result = run_cli("convert", tmp_path / "missing.pth.tar", option, value, "-o", tmp_path / "out")
    line = assert_refused(result)
    assert "no such file" not in line.lower(), line
    assert not (tmp_path / "out").exists()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(min_size=1, max_size=12).filter(lambda s: not s.strip().isdigit() and "\x00" not in s))
def test_any_non_numeric_imgsz_is_refused_cleanly(value, tmp_path):
    if value.startswith("-"):  # an option name, not a value, to the parser
        value = "x" + value
    result = run_cli("convert", tmp_path / "missing.pth.tar", "--imgsz", value, "-o", tmp_path / "out")
    line = assert_refused(result)
    assert "no such file" not in line.lower(), line


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(min_value=8193, max_value=10**9))
def test_an_input_size_beyond_memory_is_refused_before_loading(size, tmp_path):
    result = run_cli("convert", tmp_path / "missing.pth.tar", "--imgsz", str(size), "-o", tmp_path / "out")
    line = assert_refused(result)
    assert "no such file" not in line.lower(), line


def test_calibration_errors_name_the_option(checkpoint, tmp_path):
    empty = tmp_path / "no-images"
    empty.mkdir()
    for calibration in (empty, tmp_path / "missing-folder"):
        result = run_cli("convert", checkpoint, "--precision", "int8", "--calibration", calibration,
                         "--imgsz", "32", "-o", tmp_path / "out")
        assert "--calibration" in assert_refused(result) + result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", ["--json", "--junit"])
def test_verify_refuses_an_unwritable_report_path_before_work(option, checkpoint, artifact, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = run_cli("verify", artifact, "-c", checkpoint, option, blocker / "report")
    assert option in assert_refused(result) + result.stderr
    assert blocker.read_text() == "x"


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_profile_refuses_an_unwritable_report_path_before_work(option, artifact, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    suffix = ".png" if option == "--plot" else ".json"
    result = run_cli("profile", artifact, option, blocker / f"report{suffix}", "--time", "0.1")
    assert option in assert_refused(result) + result.stderr


# --- 3. Manifests: malformed, or naming files outside the artifact --------------------------------------------

def _manifest_edits() -> dict:
    def field(name, value):
        return lambda m: m | {name: value}

    def drop(name):
        return lambda m: {k: v for k, v in m.items() if k != name}

    return {
        "a-list": lambda m: [m],
        "a-string": lambda m: "manifest",
        "a-number": lambda m: 5,
        "null": lambda m: None,
        "files-a-number": field("files", 5),
        "files-of-numbers": field("files", [5]),
        "files-empty": field("files", []),
        "files-missing": drop("files"),
        "files-parent-escape": field("files", ["../other/model.onnx"]),
        "files-absolute": field("files", ["/etc/passwd.onnx"]),
        "files-nonexistent": field("files", ["nowhere.onnx"]),
        "inputs-a-string": field("inputs", "x"),
        "inputs-missing": drop("inputs"),
        "input-name-a-number": lambda m: m | {"inputs": [{**m["inputs"][0], "name": 3}]},
        "input-shape-a-string": lambda m: m | {"inputs": [{**m["inputs"][0], "shape": "big"}]},
        "outputs-a-number": field("outputs", 5),
        "preprocessing-a-number": field("preprocessing", 7),
        "odconv-layers-a-number": field("odconv_layers", 3),
        "precision-unknown": field("precision", "fp99"),
        "precision-a-number": field("precision", 5),
        "format-a-string": field("format", "x"),
    }


MANIFEST_EDITS = _manifest_edits()
RAW_MANIFESTS = {"not-json": "{this is not json", "empty": "", "binary": "\x00\xff\xfe"}


def _damaged(artifact: Path, tmp_path: Path, kind: str) -> Path:
    copy = tmp_path / "artifact"
    shutil.copytree(artifact, copy)
    manifest = copy / "manifest.json"
    if kind in RAW_MANIFESTS:
        manifest.write_text(RAW_MANIFESTS[kind], errors="surrogateescape")
    else:
        manifest.write_text(json.dumps(MANIFEST_EDITS[kind](json.loads(manifest.read_text()))))
    return copy


MANIFEST_KINDS = sorted(MANIFEST_EDITS) + sorted(RAW_MANIFESTS)


@pytest.mark.parametrize("kind", MANIFEST_KINDS)
def test_verify_refuses_a_malformed_manifest(kind, checkpoint, artifact, tmp_path):
    assert_refused(run_cli("verify", _damaged(artifact, tmp_path, kind), "-c", checkpoint))


@pytest.mark.parametrize("kind", MANIFEST_KINDS)
def test_profile_refuses_a_malformed_manifest(kind, artifact, tmp_path):
    assert_refused(run_cli("profile", _damaged(artifact, tmp_path, kind), "--time", "0.1", "-n", "2"))


def test_a_manifest_naming_a_working_model_elsewhere_does_not_pass(checkpoint, artifact, tmp_path):
    """The artifact's own model is broken; its manifest points at a good model outside the directory."""
    good = tmp_path / "other"
    shutil.copytree(artifact, good)
    broken = tmp_path / "broken"
    shutil.copytree(artifact, broken)
    model = broken / json.loads((broken / "manifest.json").read_text())["files"][0]
    model.write_bytes(model.read_bytes()[:100])
    for target in (f"../other/{model.name}", str(good / model.name)):
        manifest = json.loads((broken / "manifest.json").read_text())
        manifest["files"] = [target]
        (broken / "manifest.json").write_text(json.dumps(manifest))
        assert_refused(run_cli("verify", broken, "-c", checkpoint))


def test_a_model_file_linked_outside_the_artifact_is_refused(checkpoint, artifact, tmp_path):
    linked = tmp_path / "linked"
    shutil.copytree(artifact, linked)
    name = json.loads((linked / "manifest.json").read_text())["files"][0]
    (linked / name).unlink()
    (linked / name).symlink_to(artifact / name)
    assert_refused(run_cli("verify", linked, "-c", checkpoint))


# --- 4. Wrong artifacts: never a PASS --------------------------------------------------------------------------

def test_an_artifact_of_another_checkpoint_fails_verify(checkpoint, artifact, tmp_path):
    with torch.no_grad():
        other = randomize_(create_model(ARCH, kernel_num=1, num_classes=10), seed=1)
    other_checkpoint = tmp_path / "other.pth.tar"
    save_official_checkpoint(other, other_checkpoint)
    result = run_cli("verify", artifact, "-c", other_checkpoint)
    assert result.exit_code == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_tiny_outputs_of_another_checkpoint_never_pass(tmp_path):
    """Freshly initialised models give logits near 1e-21: an absolute tolerance alone passes anything."""
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        path = tmp_path / f"fresh{seed}.pth.tar"
        save_official_checkpoint(create_model(ARCH, kernel_num=1, num_classes=10), path)
        paths.append(path)
    out = tmp_path / "fresh_onnx"
    made = run_cli("convert", paths[0], "--target", "onnx", "--imgsz", "32", "-o", out, "--no-verify")
    assert made.exit_code == 0, made.stderr
    result = run_cli("verify", out, "-c", paths[1])
    assert result.exit_code in (1, 2), (result.exit_code, result.stdout[-1500:])
    assert "Traceback" not in result.stderr + result.stdout


# --- 5. Output paths: only odexport's own artifacts are ever replaced ------------------------------------------

def test_a_user_directory_with_its_own_manifest_is_untouched(checkpoint, user_dir):
    before = tree_state(user_dir)
    result = run_cli("convert", checkpoint, "--target", "onnx", "--imgsz", "32", "-o", user_dir, "--no-verify")
    assert str(user_dir) in assert_refused(result) + result.stderr
    assert tree_state(user_dir) == before


def test_an_artifact_with_a_user_file_added_is_untouched(checkpoint, artifact, tmp_path):
    target = tmp_path / "artifact"
    shutil.copytree(artifact, target)
    (target / "notes.txt").write_text("my notes\n")
    before = tree_state(target)
    result = run_cli("convert", checkpoint, "--target", "onnx", "--imgsz", "32", "-o", target, "--no-verify")
    assert_refused(result)
    assert tree_state(target) == before


def test_a_symlink_to_a_user_directory_is_untouched(checkpoint, user_dir, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(user_dir, target_is_directory=True)
    before = tree_state(user_dir)
    result = run_cli("convert", checkpoint, "--target", "onnx", "--imgsz", "32", "-o", link, "--no-verify")
    assert_refused(result)
    assert tree_state(user_dir) == before and link.is_symlink()


def test_the_checkpoints_own_directory_is_untouched(checkpoint, tmp_path):
    home = tmp_path / "work"
    home.mkdir()
    local = home / "model.pth.tar"
    shutil.copy(checkpoint, local)
    before = tree_state(home)
    assert_refused(run_cli("convert", local, "--target", "onnx", "--imgsz", "32", "-o", home, "--no-verify"))
    assert_refused(run_cli("convert", local, "--target", "onnx", "--imgsz", "32", "-o", local, "--no-verify"))
    assert tree_state(home) == before


def test_a_file_at_the_output_path_is_untouched(checkpoint, tmp_path):
    target = tmp_path / "out"
    target.write_text("precious\n")
    assert_refused(run_cli("convert", checkpoint, "--imgsz", "32", "-o", target, "--no-verify"))
    assert target.read_text() == "precious\n"


def test_an_earlier_artifact_is_replaced_and_a_new_directory_follows_the_umask(checkpoint, artifact, tmp_path):
    """The positive control: what odexport wrote, it may replace; what it creates is not private to it."""
    earlier = tmp_path / "earlier"
    shutil.copytree(artifact, earlier)
    result = run_cli("convert", checkpoint, "--target", "onnx", "--imgsz", "32", "-o", earlier, "--no-verify")
    assert result.exit_code == 0, result.stderr
    fresh = tmp_path / "fresh"
    previous = os.umask(0o022)
    try:
        result = run_cli("convert", checkpoint, "--target", "onnx", "--imgsz", "32", "-o", fresh, "--no-verify")
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.stderr
    assert fresh.stat().st_mode & 0o777 == 0o755
    assert not [p.name for p in tmp_path.iterdir() if ".partial-" in p.name or ".previous-" in p.name]


# --- 6. Interrupted runs: nothing is left that the next run does not clean ------------------------------------

def _odexport(*args: str, tmpdir: Path) -> subprocess.Popen:
    env = os.environ | {"TMPDIR": str(tmpdir)}
    return subprocess.Popen([sys.executable, "-m", "odexport.cli.app", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["kill", "int", "term"])
def test_an_interrupted_convert_leaves_nothing_the_next_run_keeps(sig, checkpoint, tmp_path):
    work, tmpdir = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmpdir.mkdir()
    out = work / "out"
    # decomposed: a dynamic batch is checked at two batch sizes, so the run stays staged long enough to
    # be interrupted there (auto's fixed batch can commit before the signal lands).
    args = ["convert", str(checkpoint), "--target", "onnx", "--lowering", "decomposed", "--imgsz", "32", "-o", str(out)]
    process = _odexport(*args, tmpdir=tmpdir)
    staged = _wait_for(lambda: any(p.name.startswith(".out.partial-") for p in work.iterdir()), 120)
    os.killpg(process.pid, sig)
    _, err = process.communicate(timeout=60)
    assert staged, "the conversion never staged its output"
    assert "Traceback" not in err
    assert not out.exists()
    again = _odexport(*args, tmpdir=tmpdir)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-2000:]
    assert sorted(p.name for p in work.iterdir()) == ["out"]
    # Runtimes keep small files of their own there (a telemetry session id); no directory may stay.
    assert not [p.name for p in tmpdir.iterdir() if p.is_dir()]
