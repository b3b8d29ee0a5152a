#!/usr/bin/env bash
# Set-up from nothing but Python: a .venv at the repository root with every dependency pinned in
# constraints.txt (PyTorch as the 2.13.0 CPU build), then the built-in demo.
# Usage: bash scripts/setup.sh [--no-demo]
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 10))'; then
    echo "error: odexport needs Python 3.10 or newer; found $("$python" --version 2>&1)" >&2
    echo "  hint: set PYTHON=/path/to/python3.11 and rerun" >&2
    exit 2
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv

# torch first and alone, pinned by constraints.txt to the tested CPU build, so that no other package's
# requirement can pull a CUDA build. odexport itself only declares a range of torch, which this satisfies.
.venv/bin/python -m pip install --disable-pip-version-check --quiet -c constraints.txt torch
# [dev]: the test tools and every optional extra (int8, plot).
.venv/bin/python -m pip install --disable-pip-version-check --quiet -c constraints.txt -e '.[dev]'
if .venv/bin/python -c 'import sys, torch; sys.exit(torch.version.cuda is None)'; then
    echo "warning: a CUDA build of torch was installed; odexport only needs the CPU build" >&2
fi
echo "odexport installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"

if [ "${1:-}" != "--no-demo" ]; then
    .venv/bin/odexport demo --output demo
fi
