import os
import shutil
import sys
from collections import OrderedDict
from pathlib import Path

# Tests import shared helpers (strategies.py), and the benchmarks' CPU placement probe, by module name.
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parents[1] / "benchmarks"))

from cpus import give_each_worker_its_own_cpus

give_each_worker_its_own_cpus()  # before torch is imported: its thread pool sizes itself then

import pytest
import torch

from odexport.checkpoint import save_official_checkpoint
from odexport.models import create_model, randomize_


# Checkpoints with the zoo's own 1000 classes are the zoo sweep's: each is used once or twice, and together
# they add up to several GB. A worker keeps its own within this budget, the least recently used deleted
# first (and rewritten if asked for again).
CHECKPOINT_BUDGET_BYTES = 256 * 2**20
# The small ones (10 classes, about 600 MB in all) the quick tests ask for again and again are written once
# for the whole run, into a directory every xdist worker shares, and kept until the run ends: within each
# worker's budget alone, the same od_resnet18 checkpoints were written again and again.
FULL_SIZE_CLASSES = 1000


class CheckpointFactory:
    """Official-format checkpoints of zoo models with seeded random weights. Full-size ones (1000 classes)
    go to ``directory``, within ``budget_bytes``; the others to ``shared``, written once per run."""

    def __init__(self, directory: Path, shared: Path, budget_bytes: int = CHECKPOINT_BUDGET_BYTES) -> None:
        self.directory = directory
        self.shared = shared
        self.budget_bytes = budget_bytes
        self.cache: OrderedDict[tuple, Path] = OrderedDict()  # least recently used first

    def __call__(self, arch: str, *, kernel_num: int = 1, reduction: float = 0.0625, num_classes: int = 10,
                 seed: int = 0, calibration_size: int | None = None) -> Path:
        """calibration_size: calibrate the BatchNorm statistics on one batch at this size only, a third of
        the time on a deep model (the default calibrates at three sizes, so that the model is well
        conditioned at any size a test runs it at)."""
        name = f"{arch}_k{kernel_num}_r{reduction}_c{num_classes}_s{seed}_cal{calibration_size or 'all'}.pth.tar"
        if num_classes != FULL_SIZE_CLASSES:
            path = self.shared / name
            if not path.is_file():
                # Written beside it, then renamed: a worker that finds the file finds it whole. Two workers
                # may both write it; they write the same bytes.
                partial = path.with_name(f"{name}.{os.getpid()}.partial")
                self._write(partial, arch, kernel_num, reduction, num_classes, seed, calibration_size)
                os.replace(partial, path)
            return path
        key = (arch, kernel_num, reduction, num_classes, seed, calibration_size)
        if key not in self.cache:
            path = self.directory / name
            self._write(path, arch, kernel_num, reduction, num_classes, seed, calibration_size)
            self.cache[key] = path
        self.cache.move_to_end(key)
        self._evict_beyond_budget()
        return self.cache[key]

    @staticmethod
    def _write(path: Path, arch: str, kernel_num: int, reduction: float, num_classes: int, seed: int,
               calibration_size: int | None) -> None:
        kwargs = {"num_classes": num_classes}
        if arch.startswith("od_"):
            kwargs |= {"kernel_num": kernel_num, "reduction": reduction}
        calibration = {} if calibration_size is None else {"calibration_batches": ((8, calibration_size),)}
        with torch.no_grad():
            model = randomize_(create_model(arch, **kwargs), seed=seed, **calibration)
        save_official_checkpoint(model, path)

    def _evict_beyond_budget(self) -> None:
        """Delete the least recently used checkpoints until the rest fit, never the one just asked for
        (each test asks for its checkpoint once, before it uses it)."""
        while len(self.cache) > 1 and sum(path.stat().st_size for path in self.cache.values()) > self.budget_bytes:
            _, path = self.cache.popitem(last=False)
            path.unlink()


SHARED_CHECKPOINTS = "shared-checkpoints"


def _run_directory(base: Path) -> Path:
    """What the whole run shares: under xdist the parent of this worker's base directory (the controller's
    base directory), else the base directory itself."""
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def pytest_sessionfinish(session):
    """The run (xdist's controller, or the lone process) deletes the shared checkpoints whatever the
    outcome: a failed run keeps its base directory, and they would stay in it."""
    if not hasattr(session.config, "workerinput"):
        factory = getattr(session.config, "_tmp_path_factory", None)
        if factory is not None and factory._basetemp is not None:
            shutil.rmtree(factory._basetemp / SHARED_CHECKPOINTS, ignore_errors=True)


@pytest.fixture
def two_run_cpus():
    """For a test that pins processes to two CPUs (the placement probe): every CPU of the run, however the
    worker was narrowed; skipped on a machine with fewer than two."""
    from cpus import RUN_CPUS, all_run_cpus

    if len(RUN_CPUS) < 2:
        pytest.skip("needs two CPUs this process may pin")
    with all_run_cpus():
        yield


@pytest.fixture(scope="session")
def tiny_model():
    from strategies import tiny_od_net

    return tiny_od_net()


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory, tiny_model) -> dict[str, Path]:
    """{"onnx": dir, "openvino": dir} of TinyODNet (decomposed, dynamic batch, 32x32), converted once per
    session without convert's own parity check (verify and profile are what use them); tests copy them
    before damaging them."""
    from odexport.conversion import convert_model

    out = tmp_path_factory.mktemp("tiny")
    return {target: convert_model(tiny_model, target=target, output=out / target, imgsz=32, lowering="decomposed",
                                   batch="dynamic", verify=False).output_dir
            for target in ("onnx", "openvino")}


@pytest.fixture(scope="session")
def tiny_onnxruntime_artifact(tmp_path_factory, tiny_model) -> Path:
    """TinyODNet converted with --target onnxruntime (graph optimised offline for ONNX Runtime only), as
    tiny_artifacts are; tests copy it before editing it."""
    from odexport.conversion import convert_model

    out = tmp_path_factory.mktemp("tiny") / "onnxruntime"
    return convert_model(tiny_model, target="onnxruntime", output=out, imgsz=32, lowering="decomposed",
                         batch="dynamic", verify=False).output_dir


@pytest.fixture(scope="session")
def official_checkpoint(tmp_path_factory):
    """A CheckpointFactory whose files are deleted when the session ends, whatever its outcome (the shared
    ones when the run ends: pytest_sessionfinish)."""
    directory = tmp_path_factory.mktemp("checkpoints")
    shared = _run_directory(tmp_path_factory.getbasetemp()) / SHARED_CHECKPOINTS
    shared.mkdir(exist_ok=True)
    yield CheckpointFactory(directory, shared)
    shutil.rmtree(directory, ignore_errors=True)


# Seconds auto times each layer's candidates beyond their first 15 runs (0.4 for users): the suite checks
# what auto does with its timings, not how careful they are (the shorter budget took the suite's summed test
# time from 1836 to 1778 s, `bash scripts/test.sh --durations=0`).
TUNING_SECONDS = "0.05"


@pytest.fixture(autouse=True, scope="session")
def _timing_cache_in_a_temporary_directory(tmp_path_factory):
    """`auto` caches its timings under the user's cache directory; tests must not read or write it. One
    cache serves the whole run, every xdist worker included (each worker's base directory sits in the
    run's): `auto` is convert's default, so most conversions time their layers, and each layer shape
    is then timed once per run, for TUNING_SECONDS."""
    previous = {name: os.environ.get(name) for name in ("ODEXPORT_CACHE_DIR", "ODEXPORT_TUNING_SECONDS")}
    shared = _run_directory(tmp_path_factory.getbasetemp()) / "odexport-cache"
    shared.mkdir(exist_ok=True)
    os.environ["ODEXPORT_CACHE_DIR"] = str(shared)
    os.environ["ODEXPORT_TUNING_SECONDS"] = TUNING_SECONDS
    yield
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
