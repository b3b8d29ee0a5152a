"""`verify`: check an artifact against its checkpoint in PyTorch, per runtime and output, and on failure
name the layer where the runtime first diverges.

read the artifact (artifact.py) -> choose runtimes (odexport.backends), batch sizes, input size, tolerance and
inputs (options.py) -> PyTorch and each runtime on the same inputs, compared by odexport.parity, localised
by odexport.localize (check.py) -> a VerifyReport (report.py), saved as JSON or JUnit XML (junit.py).
"""

from .artifact import Artifact, read_artifact
from .check import verify_artifact
from .options import parse_batches, resolve_tolerance
from .junit import write_reports
from .report import RuntimeVerification, VerifyReport

__all__ = [
    "Artifact", "RuntimeVerification", "VerifyReport",
    "parse_batches", "read_artifact", "resolve_tolerance", "verify_artifact", "write_reports",
]
