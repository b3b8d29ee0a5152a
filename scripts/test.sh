#!/usr/bin/env bash
# The whole test suite, slow full-size zoo tests included. Extra arguments go to pytest
# (e.g. -m "not slow" for the quick suite, or -k parity).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest "$@"
