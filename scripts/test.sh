#!/usr/bin/env bash
# The whole test suite, slow full-size zoo tests included, on two worker processes (much of a conversion is
# single-threaded Python: tracing, serialising, simplifying). Extra arguments go to pytest (e.g.
# -m "not slow" for the quick suite, -k parity, or -n 0 for one process).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -n "${ODEXPORT_TEST_WORKERS:-2}" --dist worksteal "$@"
