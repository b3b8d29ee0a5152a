"""A short measuring budget; the TinyODNet artifacts (tiny_artifacts) come from tests/conftest.py."""

from __future__ import annotations

SIZE = 32  # the size tiny_artifacts were converted at
# Enough calls for statistics; no test reads a time.
QUICK = {"iterations": 6, "time": 0.2, "warmup": 1}
