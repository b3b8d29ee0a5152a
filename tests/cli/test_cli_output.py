"""convert's output as users meet it: a directory of theirs is never replaced, and a run killed half-way
(real `odexport convert` processes, SIGKILL and SIGSTOP) leaves nothing the next run does not clean up."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from odexport.scratch import OWNER_FILE
from test_cli import assert_clean_error, run_cli


def test_a_users_directory_holding_a_manifest_of_their_own_is_left_untouched(official_checkpoint, tmp_path):
    project = tmp_path / "project"
    project.mkdir(mode=0o750)
    project.chmod(0o750)
    (project / "manifest.json").write_text(json.dumps({"name": "my-app", "files": ["main.py"]}))
    (project / "main.py").write_text("print('my source')\n")
    result = run_cli("convert", official_checkpoint("od_resnet18"), "-o", project, "--imgsz", "32", "--no-verify")
    assert_clean_error(result, 2, str(project), "not an odexport artifact", "left untouched")
    assert sorted(p.name for p in project.iterdir()) == ["main.py", "manifest.json"]
    assert (project / "main.py").read_text() == "print('my source')\n"
    assert stat.S_IMODE(project.stat().st_mode) == 0o750
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]


def _convert(checkpoint: Path, output: Path, temp: Path, log: Path) -> subprocess.Popen:
    """`odexport convert` as a shell starts it, with its temporary files in ``temp``."""
    command = [sys.executable, "-m", "odexport.cli.app", "convert", str(checkpoint), "-o", str(output),
               "--imgsz", "32", "--target", "onnx", "--no-verify"]
    return subprocess.Popen(command, env=os.environ | {"TMPDIR": str(temp)}, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, text=True)


def _wait_until_working(run: subprocess.Popen, output: Path, temp: Path) -> tuple[Path, Path]:
    """(its staging directory beside ``output``, its working directory in ``temp``) once both exist and
    carry the run's owner record (a directory is created a moment before its record is written; one
    caught in between cannot be proved abandoned, and is rightly left alone)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and run.poll() is None:
        staging = list(output.parent.glob(f".{output.name}.partial-{run.pid}-*"))
        working = list(temp.glob(f"odexport-convert-{run.pid}-*"))
        if staging and working and all((path / OWNER_FILE).is_file() for path in (staging[0], working[0])):
            return staging[0], working[0]
        time.sleep(0.02)
    raise AssertionError(f"convert (pid {run.pid}, exit {run.poll()}) never started writing")


def _leftovers(output: Path, temp: Path) -> list[str]:
    beside = [p.name for p in output.parent.iterdir() if p.name != output.name and p.name != "logs"]
    # Other libraries keep small files there (e.g. a session id); a working directory is what a run leaves.
    return beside + [p.name for p in temp.iterdir() if p.name.startswith("odexport-") or p.is_dir()]


def test_a_killed_conversion_is_cleaned_up_by_the_next_run_but_a_live_one_is_not(official_checkpoint, tmp_path):
    checkpoint = official_checkpoint("od_resnet18")
    temp, logs, output = tmp_path / "tmp", tmp_path / "logs", tmp_path / "work" / "out"
    temp.mkdir()
    logs.mkdir()
    output.parent.mkdir()

    first = _convert(checkpoint, output, temp, logs / "first.log")
    try:
        staging, working = _wait_until_working(first, output, temp)
        first.send_signal(signal.SIGSTOP)  # alive, but making no progress: a run still converting

        second = _convert(checkpoint, output, temp, logs / "second.log")
        assert second.wait(timeout=600) == 0, (logs / "second.log").read_text()
        assert staging.is_dir() and working.is_dir(), "a live run's directories were removed"
        assert "stale" not in (logs / "second.log").read_text()

        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
    assert staging.is_dir() and working.is_dir(), "SIGKILL leaves them behind: nothing to test"

    third = _convert(checkpoint, output, temp, logs / "third.log")
    assert third.wait(timeout=600) == 0, (logs / "third.log").read_text()
    said = (logs / "third.log").read_text()
    assert f"removed stale partial output {staging} left by an interrupted run (pid {first.pid})" in said, said
    assert f"removed stale working directory {working} left by an interrupted run (pid {first.pid})" in said, said
    assert _leftovers(output, temp) == []
    assert sorted(p.name for p in output.iterdir()) == ["manifest.json", "model.onnx"]
