"""compare(): in one process, an ODConv model's lowerings x runtimes x precisions next to PyTorch eager,
the naive ``torch.onnx.export`` of the original model at a fixed batch, and its static twin (the same
architecture with plain convolutions), as ratios to the twin at the same runtime, precision and batch."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, TypeVar

import torch
from torch import nn

from ..backends import ALL, RunOptions, get_backend, list_backends, model_suffixes
from ..calibration import SYNTHETIC
from ..checkpoint import load_checkpoint
from ..conversion import convert_model
from ..console import Reporter, SilentReporter
from ..errors import InputError, OdexportError
from ..limits import parse_imgsz
from ..lowering import get_lowering, list_lowerings
from ..lowering.auto import AUTO
from ..manifest import stamped
from ..models import create_model, get_arch, randomize_
from ..precisions import get_precision
from ..scratch import scratch_directory
from .machine import machine
from .measure import Budget, Session, TorchSession, interleaved, runtime_session
from .profile import DEFAULT_THREADS, Progress
from .result import RunProfile, check_schema, run_from_dict, write_json

STATIC = "static twin"
# Calibration for a quantized comparison: enough for the quantizer's statistics; speed does not depend on them.
CALIBRATION_IMAGES = 16
NAIVE = "naive export"
EAGER = "pytorch eager"
EAGER_RUNTIME = "pytorch"  # the runtime column of PyTorch eager rows


@dataclass(frozen=True)
class CompareRow:
    """variant: a lowering's name, STATIC, NAIVE or EAGER; ratio: median latency over the static twin's at
    the same runtime, precision and batch (None when the twin was not measured there); placement: what a
    PlacementProbe recorded around this row's group (its fields), None when none was given."""

    variant: str
    run: RunProfile
    ratio: float | None
    placement: dict | None = None


T = TypeVar("T")


class PlacementProbe(Protocol):
    """How the CPUs sat around one measured group, for benchmarks on machines where that moves (the CPU
    placement probe of benchmarks/placement.py). around(measure) -> (its result, a placement: a dataclass
    with describe()); apart(placement): whether it read apart, so the group is measured again."""

    def around(self, measure: Callable[[], T]) -> tuple[T, Any]: ...

    def apart(self, placement: Any) -> bool: ...


@dataclass(frozen=True)
class CompareReport:
    model: str
    twin: str
    input_size: tuple[int, int]
    threads: int | None
    rows: tuple[CompareRow, ...]
    machine: dict
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return stamped(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "CompareReport":
        check_schema(data)
        rows = tuple(CompareRow(row["variant"], run_from_dict(row["run"]), row["ratio"], row.get("placement"))
                     for row in data["rows"])
        return cls(data["model"], data["twin"], tuple(data["input_size"]), data["threads"], rows, data["machine"],
                   tuple(data.get("notes", ())))

    def write_json(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())

    def row(self, variant: str, key: str) -> CompareRow | None:
        """The row of ``variant`` at ``key`` ("openvino bf16 b1", see RunProfile.key)."""
        return next((row for row in self.rows if row.variant == variant and row.run.key == key), None)


def default_lowerings() -> list[str]:
    return [*list_lowerings(), AUTO]


def default_runtimes() -> tuple[str, ...]:
    """The backends "all" means (a slow oracle is left out)."""
    return tuple(name for name in list_backends() if get_backend(name).in_all)


def parse_runtimes(choice: str) -> tuple[str, ...]:
    """"all" -> every runtime "all" means; a runtime's name -> that one."""
    if choice == ALL:
        return default_runtimes()
    return (get_backend(choice).name,)


def compare(checkpoint: str | Path, *, arch: str | None = None, unsafe_pickle: bool = False, **options) -> CompareReport:
    """compare_models for a checkpoint; the twin is the zoo's static twin of its architecture, with the
    same number of classes and seeded weights (speed does not depend on the values)."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir() or checkpoint.suffix in model_suffixes():
        raise InputError(f"{checkpoint}: a comparison needs a checkpoint (it exports every lowering itself)",
                         hint="pass the checkpoint the artifact was converted from")
    loaded = load_checkpoint(checkpoint, arch=arch, unsafe_pickle=unsafe_pickle)
    twin_name = get_arch(loaded.arch).static_twin
    with torch.no_grad():
        twin = randomize_(create_model(twin_name, num_classes=loaded.num_classes), seed=0).eval()
    return compare_models(loaded.model, twin, name=f"{loaded.arch} kernel_num {loaded.kernel_num}",
                          twin_name=twin_name, **options)


def compare_models(
    model: nn.Module,
    twin: nn.Module,
    *,
    name: str,
    twin_name: str,
    runtimes: Sequence[str] | None = None,
    precisions: Sequence[str] = ("fp32", "bf16"),
    batch_sizes: Sequence[int] = (1,),
    imgsz: int | tuple[int, int] = 224,
    threads: int | None = DEFAULT_THREADS,
    budget: Budget = Budget(iterations=100, seconds=3.0),
    rounds: int = 3,
    lowerings: Sequence[str] | None = None,
    naive: bool = True,
    eager: bool = True,
    reporter: Reporter | None = None,
    progress: Progress | None = None,
    attempts: int = 1,
    placements: PlacementProbe | None = None,
) -> CompareReport:
    """Every variant at every batch size in every runtime (None: those "all" means) and precision it
    offers (eager: fp32 only); budget: per variant and configuration, spread over ``rounds`` interleaved
    rounds.

    placements: probes where the CPUs sat around each group (None: not probed); attempts: how many times a
    group may be measured while they read apart before the last measurement is kept."""
    reporter = reporter or SilentReporter()
    size = parse_imgsz(imgsz)
    runtimes = tuple(runtimes) if runtimes is not None else default_runtimes()
    unknown = [r for r in runtimes if r not in list_backends()]
    if unknown:
        raise InputError(f"unknown runtime {', '.join(unknown)}", hint=f"choose from: {', '.join(list_backends())}")
    lowerings = list(lowerings if lowerings is not None else default_lowerings())
    notes: list[str] = []
    runs: list[tuple[str, RunProfile, dict | None]] = []
    with scratch_directory("compare", reporter) as work:
        exporters = _exporters(model, twin, lowerings, naive, size, Path(work), reporter, notes)
        groups = _groups(exporters, runtimes, precisions, batch_sizes, eager)
        total, done = sum(len(variants) for *_, variants in groups), 0
        for batch, runtime, precision, variants in groups:
            sessions = []
            for variant in variants:
                if progress:
                    progress(done, total, f"{variant}: {runtime} {precision} batch {batch}")
                done += 1
                sessions += _session(variant, model, twin, exporters, runtime, precision, (batch, 3, *size),
                                     threads, notes)
            runs += _measure(sessions, f"{runtime} {precision} batch {batch}", budget, rounds, max(1, attempts),
                             placements, reporter, notes)
        if progress:
            progress(total, total, "done")
    static = {run.key: run.latency.median_ms for variant, run, _ in runs if variant == STATIC}
    rows = tuple(CompareRow(variant, run, run.latency.median_ms / static[run.key] if run.key in static else None,
                            placement)
                 for variant, run, placement in runs)
    return CompareReport(name, twin_name, tuple(size), threads, rows, machine(), tuple(dict.fromkeys(notes)))


def _groups(exporters: dict, runtimes: Sequence[str], precisions: Sequence[str], batch_sizes: Sequence[int],
            eager: bool) -> list[tuple[int, str, str, list[str]]]:
    """(batch, runtime, precision, variants) per group. Variants measured side by side share a group; a
    group's sessions are alive together and timed in interleaved rounds, so the twin and each lowering see
    the same load."""
    groups = [(batch, runtime, precision, _variants(exporters, precision))
              for batch in batch_sizes for runtime in runtimes
              for precision in precisions if precision in get_backend(runtime).precisions]
    if eager:
        groups += [(batch, EAGER_RUNTIME, "fp32", [STATIC, EAGER]) for batch in batch_sizes]
    return groups


def _session(variant: str, model: nn.Module, twin: nn.Module, exporters: dict, runtime: str, precision: str,
             shape: tuple[int, ...], threads: int | None, notes: list[str]) -> list[Session]:
    """The session measuring ``variant`` in ``runtime`` (none, with a note, when it cannot be built)."""
    try:
        if runtime == EAGER_RUNTIME:
            return [TorchSession(variant, twin if variant == STATIC else model, threads, shape)]
        model_file = exporters[variant](shape[0], runtime, precision)
        if model_file is None:
            return []
        return [runtime_session(variant, get_backend(runtime), model_file, RunOptions(precision, "latency", threads),
                                shape)]
    except Exception as error:  # one variant failing says something; it must not end the comparison
        notes.append(f"{variant}: {runtime} {precision} batch {shape[0]} failed: {type(error).__name__}: "
                     f"{str(error).strip()[:200]}")
        return []


def _measure(sessions: list[Session], group: str, budget: Budget, rounds: int, attempts: int,
             placements: PlacementProbe | None, reporter: Reporter,
             notes: list[str]) -> list[tuple[str, RunProfile, dict | None]]:
    """The group's sessions timed together, again (up to ``attempts`` times) while the CPUs read apart, then
    closed: (label, run, placement) each."""
    placement = None
    with reporter.stage("Measure", f"{len(sessions)} variants, {group}"):
        for attempt in range(1, attempts + 1):
            if placements is None:
                measured = interleaved(sessions, budget, rounds)
                break
            measured, placement = placements.around(lambda: interleaved(sessions, budget, rounds))
            if not placements.apart(placement):
                break
            if attempt < attempts:
                reporter.info(f"  CPUs apart ({placement.describe()}): measuring {group} again")
            else:
                notes.append(f"{group}: measured with the CPUs apart ({placement.describe()})"
                             + (f" in all {attempts} attempts" if attempts > 1 else ""))
    for session in sessions:
        session.close()
    recorded = None if placement is None else asdict(placement)
    return [(session.label, run, recorded) for session, run in zip(sessions, measured)]


def _exporters(model: nn.Module, twin: nn.Module, lowerings: list[str], naive: bool, size: tuple[int, int],
               work: Path, reporter: Reporter, notes: list[str]) -> dict[str, Callable[[int, str, str], Path | None]]:
    """{variant: (batch, runtime, precision) -> its model file (None when it cannot be written)}, each
    written once per batch it needs (once for a dynamic batch), and `auto` once per runtime and precision
    too: it times its candidates on the runtime that will run it."""
    cache: dict[tuple[str, int | None, str], Path | None] = {}

    def cached(variant: str, batch: int | None, write: Callable[[Path], Path], where: str = "") -> Path | None:
        if (variant, batch, where) not in cache:
            label = f"{variant} at batch {batch or 'dynamic'}" + (f" for {where}" if where else "")
            try:
                with reporter.stage("Export", label):
                    out = work / f"{variant.replace(' ', '-')}-b{batch or 'dynamic'}{where.replace(' ', '-')}"
                    cache[(variant, batch, where)] = write(out)
            except Exception as error:
                message = error.message if isinstance(error, OdexportError) else f"{type(error).__name__}: {error}"
                notes.append(f"{label} could not be exported: {message.strip()[:200]}")
                cache[(variant, batch, where)] = None
        return cache[(variant, batch, where)]

    def ours(source: nn.Module, lowering: str, variant: str) -> Callable[[int, str, str], Path | None]:
        dynamic = lowering != AUTO and get_lowering(lowering).dynamic_batch

        def export(batch: int, runtime: str, precision: str) -> Path | None:
            fixed = None if dynamic else batch
            # One fp32 ONNX file serves every runtime and precision (the session sets the precision), except
            # for auto, whose per-layer choice depends on both, and for a quantized precision, which is written
            # into the file (the twin quantized the same way, on the same synthetic calibration images).
            target, written, where = "onnx", "fp32", ""
            quantized = get_precision(precision).quantized
            if lowering == AUTO or quantized:
                target, written, where = get_backend(runtime).target, precision, f"{runtime} {precision}"
            return cached(variant, fixed, lambda out: convert_model(
                source, target=target, output=out, imgsz=size, batch=fixed or "dynamic", lowering=lowering,
                precision=written, verify=False, calibration=SYNTHETIC if quantized else None,
                calibration_size=CALIBRATION_IMAGES).model_file, where)

        return export

    exporters = {STATIC: ours(twin, "decomposed", STATIC)}
    exporters |= {lowering: ours(model, lowering, lowering) for lowering in lowerings}
    if naive:
        exporters[NAIVE] = lambda batch, *_: cached(NAIVE, batch, lambda out: naive_export(model, out, batch, size))
    return exporters


def _variants(exporters: dict, precision: str) -> list[str]:
    """The variants measured at ``precision``: the naive export is what users get without odexport, so it is
    not quantized."""
    return [variant for variant in exporters if not (variant == NAIVE and get_precision(precision).quantized)]


def naive_export(model: nn.Module, directory: Path, batch: int, size: tuple[int, int]) -> Path:
    """What users do today: the TorchScript exporter on the original model at a fixed batch."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.zeros(batch, 3, *size),), str(path), dynamo=False,
                          input_names=["input"], output_names=["output"])
    return path
