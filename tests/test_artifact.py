"""StagedDirectory on real files: it replaces only what odexport provably wrote, and cleans up after runs
that were killed (real child processes: one killed, one still running), never after live ones."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from odexport.staging import MANIFEST, StagedDirectory
from odexport.errors import OutputError
from odexport.manifest import MANIFEST_FORMAT, MANIFEST_PRODUCER
from odexport.scratch import OWNER_FILE


class Notes:
    """A reporter that keeps what it is told."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)


def write_artifact(directory: Path, files: dict[str, str], manifest: dict | None = None) -> None:
    """An artifact as convert writes it: the files and a manifest listing them."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    manifest = {"format": MANIFEST_FORMAT, "producer": MANIFEST_PRODUCER, "files": list(files)} | (manifest or {})
    (directory / MANIFEST).write_text(json.dumps(manifest))


def snapshot(path: Path) -> dict:
    """Everything under ``path`` (itself included): relative name -> (mode, contents or link target)."""
    entries = {}
    for entry in [path, *sorted(path.rglob("*"))] if path.is_dir() and not path.is_symlink() else [path]:
        info = entry.lstat()
        content = (os.readlink(entry) if entry.is_symlink() else entry.read_bytes() if entry.is_file() else None)
        entries[str(entry.relative_to(path.parent))] = (stat.S_IMODE(info.st_mode), content)
    return entries


def stage_and_commit(output: Path, reporter=None) -> Path:
    with StagedDirectory(output, reporter) as staged:
        (staged.path / "model.onnx").write_text("new model")
        (staged.path / MANIFEST).write_text(json.dumps(
            {"format": MANIFEST_FORMAT, "producer": MANIFEST_PRODUCER, "files": ["model.onnx"]}))
        return staged.commit()


def user_directories(root: Path) -> dict[str, Path]:
    """Things at an output path that are the user's, each of which convert must refuse and leave alone."""
    foreign_manifest = root / "project"
    foreign_manifest.mkdir()
    (foreign_manifest / MANIFEST).write_text(json.dumps({"name": "my-app", "version": "1.0"}))
    (foreign_manifest / "main.py").write_text("print('mine')\n")
    old_format = root / "old"  # a manifest with a format but without odexport's producer marker
    write_artifact(old_format, {"model.onnx": "weights"}, {"producer": None})
    extra_files = root / "extended"  # odexport's manifest, plus files the user put beside it
    write_artifact(extra_files, {"model.onnx": "weights"})
    (extra_files / "notes.txt").write_text("my notes")
    a_file = root / "file"
    a_file.write_text("not a directory")
    target = root / "real"
    write_artifact(target, {"model.onnx": "weights"})
    link = root / "link"
    link.symlink_to(target, target_is_directory=True)
    linked_inside = root / "linked"  # an artifact whose listed file is a link to the user's data
    write_artifact(linked_inside, {})
    (linked_inside / "model.onnx").symlink_to(a_file)
    (linked_inside / MANIFEST).write_text(json.dumps(
        {"format": MANIFEST_FORMAT, "producer": MANIFEST_PRODUCER, "files": ["model.onnx"]}))
    for path in (foreign_manifest, old_format, extra_files):
        path.chmod(0o751)  # a mode of the user's choosing, which must survive
    return {"foreign manifest": foreign_manifest, "manifest without producer": old_format,
            "extra user file": extra_files, "a file": a_file, "a symlink": link, "a link inside": linked_inside}


@pytest.mark.parametrize("kind", ["foreign manifest", "manifest without producer", "extra user file", "a file",
                                  "a symlink", "a link inside"])
def test_refuses_what_odexport_did_not_write_and_leaves_it_untouched(tmp_path, kind):
    output = user_directories(tmp_path)[kind]
    before = snapshot(output)
    with pytest.raises(OutputError) as caught:
        stage_and_commit(output)
    assert caught.value.exit_code == 2
    assert str(output) in caught.value.message
    assert snapshot(output) == before
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name or ".previous-" in p.name]


def test_replaces_an_earlier_artifact_and_takes_the_umask_mode_for_a_new_one(tmp_path):
    earlier = tmp_path / "earlier"
    write_artifact(earlier, {"1/model.xml": "ir", "1/model.bin": "weights"})
    assert stage_and_commit(earlier) == earlier.absolute()
    assert sorted(p.name for p in earlier.iterdir()) == [MANIFEST, "model.onnx"]

    previous = os.umask(0o027)
    try:
        fresh = stage_and_commit(tmp_path / "fresh")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o750  # what mkdir gives under that umask, not mkdtemp's 0700
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier", "fresh"]


def test_an_empty_directory_keeps_its_mode_and_an_old_0700_artifact_does_not(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    empty.chmod(0o751)
    assert stat.S_IMODE(stage_and_commit(empty).stat().st_mode) == 0o751
    old = tmp_path / "old"
    write_artifact(old, {"model.onnx": "weights"})
    old.chmod(0o700)  # as earlier versions left every artifact
    previous = os.umask(0o022)
    try:
        assert stat.S_IMODE(stage_and_commit(old).stat().st_mode) == 0o755
    finally:
        os.umask(previous)


def test_a_foreign_directory_appearing_before_commit_is_not_replaced(tmp_path):
    output = tmp_path / "out"
    with StagedDirectory(output) as staged:
        (staged.path / "model.onnx").write_text("new model")
        # The user creates their own directory at the output path while the model converts.
        output.mkdir(mode=0o755)
        (output / MANIFEST).write_text('{"name": "my-app"}')
        (output / "data.csv").write_text("1,2,3\n")
        before = snapshot(output)
        with pytest.raises(OutputError) as caught:
            staged.commit()
    assert caught.value.exit_code == 2 and str(output) in caught.value.message
    assert snapshot(output) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the staged files are gone too


# In a child process of its own: the test needs its main thread and SIGINT handling as a CLI run has them
# (a test worker's are not; raising KeyboardInterrupt there took an xdist worker down).
SWALLOWED_CTRL_C = """
import os, signal, sys, time
from pathlib import Path
from odexport.staging import StagedDirectory

output = Path(sys.argv[1])
before = signal.getsignal(signal.SIGINT)
try:
    with StagedDirectory(output) as staged:
        (staged.path / "model.onnx").write_text("new model")
        if sys.argv[2] == "interrupt":
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)  # the handler raises KeyboardInterrupt at once
                print("the interrupt never arrived")
            except KeyboardInterrupt:
                pass  # what onnxsim's native code did with it
        else:
            print("handler while staged is the previous one:", signal.getsignal(signal.SIGINT) is before)
        staged.commit()
    print("committed")
except KeyboardInterrupt:
    print("interrupted")
print("handler restored:", signal.getsignal(signal.SIGINT) is before)
"""


def test_a_ctrl_c_that_a_library_swallowed_still_stops_the_commit(tmp_path):
    # onnxsim's constant folding calls back into Python and drops a KeyboardInterrupt raised there: the
    # conversion carried on and committed (seen as a flaky interrupted-convert test).
    output = tmp_path / "out"
    run = subprocess.run([sys.executable, "-c", SWALLOWED_CTRL_C, str(output), "interrupt"],
                         capture_output=True, text=True, timeout=120)
    assert run.stdout.splitlines() == ["interrupted", "handler restored: True"], run.stdout + run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_without_an_interrupt_the_commit_happens_and_the_handler_is_put_back(tmp_path):
    output = tmp_path / "out"
    run = subprocess.run([sys.executable, "-c", SWALLOWED_CTRL_C, str(output), "none"],
                         capture_output=True, text=True, timeout=120)
    assert run.stdout.splitlines() == ["handler while staged is the previous one: False", "committed",
                                       "handler restored: True"], run.stdout + run.stderr
    assert (output / "model.onnx").read_text() == "new model"


def child(code: str) -> subprocess.Popen:
    """A Python process that runs ``code``, prints "ready" and waits to be killed."""
    script = f"{code}\nprint('ready', flush=True)\nimport time\ntime.sleep(600)\n"
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    return child


def test_stale_staging_of_a_killed_run_is_removed_and_a_live_runs_is_kept(tmp_path):
    output = tmp_path / "out"
    stage = f"from odexport.staging import StagedDirectory\nstaged = StagedDirectory({str(output)!r})"
    killed, live = child(stage), child(stage)
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        staging = {p.name for p in tmp_path.iterdir()}
        assert {f".out.partial-{killed.pid}", f".out.partial-{live.pid}"} == {n.rsplit("-", 1)[0] for n in staging}

        notes = Notes()
        stage_and_commit(output, notes)
        left = sorted(p.name for p in tmp_path.iterdir() if p.name != "out")
        assert (output / "model.onnx").is_file()
        assert len(left) == 1 and left[0].startswith(f".out.partial-{live.pid}-")
        assert len(notes.lines) == 1
        assert "removed stale partial output" in notes.lines[0] and f"(pid {killed.pid})" in notes.lines[0]
    finally:
        live.kill()
        live.wait()


def test_a_directory_without_odexports_owner_record_is_never_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    lookalike = tmp_path / f".out.partial-{pid}-abc"  # the name alone proves nothing
    lookalike.mkdir()
    (lookalike / "mine.txt").write_text("keep")
    forged = tmp_path / f".out.partial-{pid}-def"  # an owner record that is not odexport's
    forged.mkdir()
    (forged / OWNER_FILE).write_text(json.dumps({"producer": "other", "pid": pid}))
    stage_and_commit(tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == [lookalike.name, forged.name, "out"]


def test_an_artifact_set_aside_by_a_run_killed_while_replacing_it_is_restored(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    output = tmp_path / "out"
    # Between its two renames: the earlier artifact moved aside, the new one not yet in place.
    write_artifact(tmp_path / f".out.previous-{pid}-0-1a2b3c4d", {"model.onnx": "earlier model"})
    notes = Notes()
    with StagedDirectory(output, notes):
        assert (output / "model.onnx").read_text() == "earlier model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert f"restored {output}" in notes.lines[0] and f"(pid {pid})" in notes.lines[0]
