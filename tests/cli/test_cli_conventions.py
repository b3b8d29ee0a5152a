"""What a user expects of any command-line tool: --version, -h on every command, every default shown in
--help, shell completion, and progress lines when the output goes to a file."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import odexport
from odexport.cli.app import app

runner = CliRunner()
COMMAND = typer.main.get_command(app)
SUBCOMMANDS = sorted(COMMAND.commands)


def _help(*args: str) -> str:
    result = runner.invoke(app, [*args, "-h"], terminal_width=300)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # line wrapping aside


def test_version_comes_from_the_package_metadata_in_the_cli_and_the_module():
    assert odexport.__version__ == metadata.version("odexport")
    for flag in ("--version", "-V"):
        result = runner.invoke(app, [flag])
        assert result.exit_code == 0
        assert result.stdout.startswith(f"odexport {odexport.__version__} (")
        assert f"torch {metadata.version('torch')}" in result.stdout


@pytest.mark.parametrize("command", [None, *SUBCOMMANDS])
def test_dash_h_is_help_everywhere(command):
    text = _help(*([command] if command else []))
    assert text.startswith("Usage: ")
    assert "-h, --help" in text


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_default_is_visible_in_help(command):
    """A set default is printed by the tool; one that depends on the input is written in the option's
    help as [default: ...], which must reach the user as text (not be read as markup and dropped)."""
    text = _help(command)
    for param in COMMAND.commands[command].params:
        if not isinstance(param, typer.core.TyperOption) or param.name in ("help", "debug"):
            continue
        written = re.findall(r"\[default: [^\]]*\]", param.help or "")
        for phrase in written:
            assert " ".join(phrase.split()) in text, (param.name, phrase)
        if written or param.default is None or (param.is_flag and not param.secondary_opts):
            continue  # no default, or an off switch
        shown = (param.opts if param.default else param.secondary_opts)[0].lstrip("-") if param.secondary_opts \
            else param.default
        assert f"[default: {shown}]" in text, (param.name, param.default)


def test_shell_completion_is_offered():
    assert "--install-completion" in _help() and "--show-completion" in _help()
    script = Path(sys.executable).with_name("odexport")
    shown = subprocess.run([str(script), "--show-completion", "bash"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "complete " in shown.stdout and "odexport" in shown.stdout, shown.stderr


def test_profile_writes_progress_lines_when_the_output_is_not_a_terminal(tiny_artifacts):
    result = runner.invoke(app, ["profile", str(tiny_artifacts["onnx"]), "--runtime", "all", "-n", "5",
                                 "--time", "0.2"])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    steps = [line for line in lines if line.startswith("  profiling ")]
    assert steps[0].startswith("  profiling 0/") and steps[-1].startswith("  profiling ")
    total = int(steps[0].split("/")[1].split(":")[0])
    assert steps[-1].startswith(f"  profiling {total}/{total}") and total >= 2
    assert sum(line.startswith("Profile: ") and " done in " in line for line in lines) == total
