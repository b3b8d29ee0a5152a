"""One vocabulary: the Python API takes what the CLI takes, under the same names, and every JSON report
says which layout it has and which package versions wrote it."""

from __future__ import annotations

import inspect as signature_of
import json

import pytest
import typer
from typer.testing import CliRunner

import odexport
from odexport.cli.app import app
from odexport.errors import InputError
from odexport.inspection import CheckpointInspection, OnnxSummary
from odexport.manifest import REPORT_SCHEMA_VERSION, versions
from odexport.profiling import ProfileReport

runner = CliRunner()
COMMANDS = typer.main.get_command(app).commands
# Options that choose how the CLI prints or saves a result, not what is computed.
OUTPUT_ONLY = {"debug", "json", "junit", "warn-only", "plot", "top", "compare"}
# The CLI's positional argument -> the API's first parameter.
POSITIONAL = {"convert": "model", "inspect": "model", "verify": "artifact", "profile": "source"}
RENAMED_BY_ROLE = {("verify", "checkpoint"): "reference"}


def _cli_names(command: str) -> set[str]:
    """Each option by its long flag (--calibration-size -> calibration_size), as a user knows it."""
    names = set()
    for param in COMMANDS[command].params:
        if isinstance(param, typer.core.TyperArgument):
            continue
        flag = next(opt for opt in param.opts if opt.startswith("--")).lstrip("-")
        if flag not in OUTPUT_ONLY:
            names.add(RENAMED_BY_ROLE.get((command, flag), flag.replace("-", "_")))
    return names


@pytest.mark.parametrize("command", sorted(POSITIONAL))
def test_every_cli_option_is_an_api_keyword_of_the_same_name(command):
    parameters = signature_of.signature(getattr(odexport, command)).parameters
    assert list(parameters)[0] == POSITIONAL[command]
    missing = _cli_names(command) - set(parameters)
    assert not missing, f"odexport.{command} lacks {sorted(missing)}"


def test_inspect_takes_a_checkpoint_path_as_the_cli_does(official_checkpoint):
    path = official_checkpoint("od_resnet18", kernel_num=4)
    found = odexport.inspect(str(path), imgsz=64)
    assert isinstance(found, CheckpointInspection)
    assert (found.arch, found.kernel_num, found.summary.input_size) == ("od_resnet18", 4, (64, 64))
    printed = runner.invoke(app, ["inspect", str(path), "--imgsz", "64", "--json"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.stdout) == json.loads(json.dumps(found.to_dict()))


def test_inspect_takes_an_exported_onnx_file(tiny_artifacts):
    found = odexport.inspect(tiny_artifacts["onnx"] / "model.onnx")
    assert isinstance(found, OnnxSummary) and found.lowering == "decomposed"


def test_old_keyword_names_still_work_with_a_deprecation_warning(tiny_artifacts, tiny_model):
    with pytest.warns(DeprecationWarning, match="batch_sizes= is now batch="):
        report = odexport.verify(tiny_artifacts["onnx"], tiny_model, batch_sizes=[2])
    assert report.batch_sizes == (2,)
    with pytest.raises(InputError, match="both batch_sizes= and batch="):
        odexport.verify(tiny_artifacts["onnx"], tiny_model, batch_sizes=[2], batch=3)
    with pytest.warns(DeprecationWarning, match="seconds= is now time="):
        profiled = odexport.profile(tiny_artifacts["onnx"], runtime="onnxruntime", precisions=["fp32"],
                                    iterations=3, seconds=0.1, warmup=0)
    assert [run.precision for run in profiled.runs] == ["fp32"]


def _assert_stamped(data: dict) -> None:
    assert data["schema_version"] == REPORT_SCHEMA_VERSION
    assert data["versions"] == versions() and data["versions"]["odexport"] == odexport.__version__


def test_verify_profile_and_inspect_json_carry_schema_and_versions_and_read_back(tiny_artifacts, tiny_model,
                                                                                  official_checkpoint, tmp_path):
    checkpoint = official_checkpoint("od_resnet18")
    inspected = runner.invoke(app, ["inspect", str(checkpoint), "--imgsz", "32", "--json"])
    _assert_stamped(json.loads(inspected.stdout))
    _assert_stamped(json.loads(runner.invoke(app, ["inspect", str(tiny_artifacts["onnx"] / "model.onnx"),
                                                   "--json"]).stdout))

    verified = odexport.verify(tiny_artifacts["onnx"], tiny_model, batch=1)
    path = tmp_path / "verify.json"
    from odexport.verification import write_reports

    write_reports(verified, json_path=path)
    data = json.loads(path.read_text())
    _assert_stamped(data)
    assert data["passed"] is True and data["batch_sizes"] == [1]

    profiled = odexport.profile(tiny_artifacts["onnx"], runtime="onnxruntime", iterations=3, time=0.1, warmup=0)
    written = profiled.write_json(tmp_path / "profile.json")
    _assert_stamped(json.loads(written.read_text()))
    assert ProfileReport.read_json(written) == profiled
    newer = json.loads(written.read_text()) | {"schema_version": REPORT_SCHEMA_VERSION + 1}
    written.write_text(json.dumps(newer))
    with pytest.raises(InputError, match="newer than this odexport reads"):
        ProfileReport.read_json(written)
