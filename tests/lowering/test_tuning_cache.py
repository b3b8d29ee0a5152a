"""The timing cache is written atomically; a write a killed run left half-done is removed by the next save,
one of a live run is not. Processes sharing the cache keep each other's measurements."""

from __future__ import annotations

import subprocess
import sys

from odexport.lowering.tuning import TimingCache, TimingContext
from odexport.scratch import process_tag


def test_a_killed_runs_half_written_cache_is_removed_and_a_live_runs_is_kept(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "from odexport.scratch import process_tag; print(process_tag())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    abandoned = tmp_path / f".timings-{gone}-k1ll3d00"  # what a run killed inside save() leaves
    abandoned.write_text('{"format": ')
    writing = tmp_path / f".timings-{process_tag()}-l1ve0000"  # a live run still writing
    writing.write_text('{"format": ')
    user_file = tmp_path / ".timings-notes"
    user_file.write_text("not odexport's")

    cache = TimingCache(tmp_path / "timings.json")
    cache.put(TimingContext("onnxruntime", "1", "f32", 2, "CPU"), "layer", {"decomposed": 1.0})
    cache.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([writing.name, user_file.name, "timings.json", "timings.json.lock"])


CONTEXT = TimingContext("onnxruntime", "1", "f32", 2, "CPU")


def test_two_writers_that_read_the_same_cache_both_keep_their_timings(tmp_path):
    path = tmp_path / "timings.json"
    first, second = TimingCache(path), TimingCache(path)  # both read the (empty) cache before timing
    first.put(CONTEXT, "layer-a", {"decomposed": 1.0})
    first.save()
    second.put(CONTEXT, "layer-b", {"decomposed": 2.0})
    second.save()
    on_disk = TimingCache(path)
    assert on_disk.get(CONTEXT, "layer-a") == {"decomposed": 1.0}
    assert on_disk.get(CONTEXT, "layer-b") == {"decomposed": 2.0}


def test_a_miss_finds_what_another_process_saved_since(tmp_path):
    path = tmp_path / "timings.json"
    reader = TimingCache(path)
    assert reader.get(CONTEXT, "layer-a") is None
    code = ("import sys; from odexport.lowering.tuning import TimingCache, TimingContext; "
            "cache = TimingCache(sys.argv[1]); "
            "cache.put(TimingContext('onnxruntime', '1', 'f32', 2, 'CPU'), 'layer-a', {'decomposed': 3.0}); "
            "cache.save()")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    assert reader.get(CONTEXT, "layer-a") == {"decomposed": 3.0}
