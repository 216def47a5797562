#!/usr/bin/env bash
# Run the whole test suite (installs first when needed): ruff, mypy, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check edgepack tests benchmarks samples
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
