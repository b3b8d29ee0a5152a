"""profile's results as data: one RunProfile per runtime, precision and batch size, in a ProfileReport
that saves to JSON and reads back."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import InputError, OutputError
from ..manifest import REPORT_SCHEMA_VERSION, stamped
from .layers import LayerBreakdown, LayerTime, NodeTime
from .stats import LatencyStats


def check_schema(data: dict) -> dict:
    """``data`` as read back, if this odexport reads its layout (files without a schema_version predate it)."""
    version = data.get("schema_version", REPORT_SCHEMA_VERSION)
    if not isinstance(version, int) or version > REPORT_SCHEMA_VERSION:
        raise InputError(f"report schema_version {version!r} is newer than this odexport reads "
                         f"({REPORT_SCHEMA_VERSION})", hint="upgrade odexport to read it")
    return data


def write_json(path: str | Path, data: dict) -> Path:
    """Write ``data`` as indented JSON, creating the parent directory; OutputError if it cannot."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n")
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror}", hint="choose a writable --json path") from None
    return path


@dataclass(frozen=True)
class RunProfile:
    """One configuration measured.

    label: what ran (the artifact, a lowering, "static twin", ...); compile_ms: reading and compiling the
    model (session creation); first_inference_ms: the first call, with its one-off allocations;
    latency: single calls after warm-up; throughput: images/s, with ``requests`` in flight (1: the
    latency loop's batch / mean); peak_memory_mib: how far the process's resident memory grew while
    building this configuration and running its first call, where runtimes allocate (memory_exact:
    measured against a reset high-water mark). For a runtime that compiles a dynamic-shape file at the
    measured input shape (static kernels), shipped_latency and shipped_compile_ms are the same file
    compiled with its shapes as written, as a user's code loads it, timed in rounds alternating with the
    static session (None: the file has no dynamic dimension, or the runtime never reshapes it).
    """

    label: str
    runtime: str
    precision: str
    hint: str
    threads: int | None
    streams: int | None
    batch: int
    input_shape: tuple[int, ...]
    compile_ms: float
    first_inference_ms: float
    latency: LatencyStats
    throughput: float
    requests: int
    peak_memory_mib: float
    memory_exact: bool
    layers: LayerBreakdown | None = None
    shipped_latency: LatencyStats | None = None
    shipped_compile_ms: float | None = None

    @property
    def shipped_ratio(self) -> float | None:
        """As-shipped median latency over the static one (None when not measured)."""
        return None if self.shipped_latency is None else self.shipped_latency.median_ms / self.latency.median_ms

    @property
    def ms_per_image(self) -> float:
        return self.latency.median_ms / self.batch

    @property
    def key(self) -> str:
        return f"{self.runtime} {self.precision} b{self.batch}"


@dataclass(frozen=True)
class ProfileReport:
    """source: what was asked for (artifact or checkpoint); model_file: what ran; notes: what is worth
    knowing but did not stop the measurement (a precision a runtime does not offer, ...)."""

    source: str
    model_file: str
    input_size: tuple[int, int]
    runs: tuple[RunProfile, ...]
    machine: dict
    odconv_layers: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return stamped(asdict(self))

    def write_json(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict) -> "ProfileReport":
        check_schema(data)
        return cls(data["source"], data["model_file"], tuple(data["input_size"]),
                   tuple(run_from_dict(run) for run in data["runs"]), data["machine"],
                   tuple(data.get("odconv_layers", ())), tuple(data.get("notes", ())))

    @classmethod
    def read_json(cls, path: str | Path) -> "ProfileReport":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise InputError(f"{path}: not a profile report ({type(error).__name__})",
                             hint="pass a file written by odexport profile --json") from None


def run_from_dict(data: dict) -> RunProfile:
    layers = data.get("layers")
    if layers is not None:
        layers = LayerBreakdown(
            layers["runtime"], layers["runs"], layers["total_ms"], dict(layers["by_category"]),
            tuple(LayerTime(**{**row, "exec_types": tuple(row["exec_types"])}) for row in layers["layers"]),
            tuple(NodeTime(**node) for node in layers["reference_kernels"]))
    shipped = data.get("shipped_latency")
    return RunProfile(**{**data, "input_shape": tuple(data["input_shape"]), "latency": LatencyStats(**data["latency"]),
                         "layers": layers, "shipped_latency": LatencyStats(**shipped) if shipped else None})
