"""Working directories in the system's temporary directory: a killed run's are removed by the next run,
a live run's are kept (real child processes, one killed, one still running)."""

from __future__ import annotations

import signal

from odexport.scratch import scratch_directory
from test_artifact import Notes, child


def test_working_directories_of_killed_runs_are_removed_and_a_live_runs_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # read TMPDIR again, here and in the children
    enter = "from odexport.scratch import scratch_directory\nwork = scratch_directory('verify')\nwork.__enter__()"
    killed, live = child(enter), child(enter)
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert len(list(tmp_path.iterdir())) == 2
        notes = Notes()
        with scratch_directory("convert", notes) as work:
            assert work.parent == tmp_path
        left = [p.name for p in tmp_path.iterdir()]
        assert len(left) == 1 and left[0].startswith(f"odexport-verify-{live.pid}-")
        assert "removed stale working directory" in notes.lines[0] and f"(pid {killed.pid})" in notes.lines[0]
    finally:
        live.kill()
        live.wait()
