#!/usr/bin/env bash
# Set up a development environment from scratch (idempotent, fast when already done):
# a virtualenv in .venv with edgepack and every extra installed from pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
# uv resolves and installs the ~2.5 GB set in seconds where pip takes about a minute.
if [[ ! -x .venv/bin/uv ]]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check uv
fi
.venv/bin/uv pip install --quiet --python .venv/bin/python -e '.[dev]'

# Local Lambda invoke runs artifacts under the Python version Lambda would use.
for v in 3.12; do
  command -v "python$v" >/dev/null || echo "note: python$v not on PATH: local invoke of python$v artifacts is unavailable" >&2
done
