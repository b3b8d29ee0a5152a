"""The Reporter the CLI uses: plain stage and progress lines into a file, a live display on a terminal,
and stage lines that survive text that looks like rich markup."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from odexport.console import PLAIN_UPDATES, ConsoleReporter


def _reporter(terminal: bool) -> tuple[ConsoleReporter, io.StringIO]:
    out = io.StringIO()
    return ConsoleReporter(Console(file=out, force_terminal=terminal, width=100, highlight=False)), out


def test_plain_output_has_start_and_done_lines_and_counted_progress():
    reporter, out = _reporter(terminal=False)
    with reporter.stage("openvino", "writing [int8]") as stage:
        with reporter.progress("calibrating", 3) as advance:
            for _ in range(3):
                advance()
        stage.result = "model.xml"
    lines = out.getvalue().splitlines()
    assert lines[0] == "openvino: writing [int8]..."
    assert lines[1:5] == ["  calibrating 0/3"] + [line for line in lines[2:5] if line.startswith("  calibrating ")]
    assert [line.split()[1] for line in lines[1:5]] == ["0/3", "1/3", "2/3", "3/3"]
    assert lines[5].startswith("openvino: done in ") and lines[5].endswith(", model.xml")
    assert "\x1b[" not in out.getvalue()  # no escape codes in a log file


def test_plain_steps_print_about_every_quarter_and_the_end_once():
    reporter, out = _reporter(terminal=False)
    total = 10 * PLAIN_UPDATES
    with reporter.steps("profiling") as update:
        for index in range(total):
            update(index, total, f"variant {index}")
        update(total, total, "done")
        update(total, total, "done")
    lines = out.getvalue().splitlines()
    assert PLAIN_UPDATES <= len(lines) <= PLAIN_UPDATES + 2
    assert lines[0] == f"  profiling 0/{total}: variant 0"
    assert lines[-1].startswith(f"  profiling {total}/{total}: done")


def test_a_failed_stage_says_so_and_reraises():
    reporter, out = _reporter(terminal=False)
    with pytest.raises(ValueError):
        with reporter.stage("ONNX", "exporting"):
            raise ValueError("boom")
    assert out.getvalue().splitlines()[-1].startswith("ONNX: failed after ")


def test_on_a_terminal_nested_stages_and_progress_share_one_live_display():
    reporter, out = _reporter(terminal=True)
    with reporter.stage("Measure", "3 variants"):
        with reporter.stage("Export", "decomposed"):
            with reporter.progress("calibrating", 2) as advance:
                advance()
                advance()
        assert reporter._live is not None
    assert reporter._live is None  # stopped with its last row
    text = out.getvalue()
    assert "Export: done in" in text.replace("\x1b[0m", "").replace("\x1b[32m", "").replace("\x1b[1m", "")


def test_nncf_draws_no_progress_bars_of_its_own(tiny_model, tmp_path, capfd):
    """int8 for OpenVINO runs NNCF, whose own bars (on stdout) would cut through odexport's lines and
    tables; its calibration is counted by odexport's progress instead."""
    from odexport.conversion import convert_model

    reporter, out = _reporter(terminal=False)
    convert_model(tiny_model, target="openvino", precision="int8", calibration="synthetic", calibration_size=4,
                  output=tmp_path / "int8", imgsz=32, verify=False, reporter=reporter)
    captured = capfd.readouterr()
    assert captured.out == "", captured.out
    assert "Statistics collection" not in captured.err
    assert "  calibrating 4/4" in out.getvalue()
