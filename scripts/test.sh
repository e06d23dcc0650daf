#!/usr/bin/env bash
# Sets up whatever is missing, checks the code with ruff and mypy, then runs the whole test suite.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
printf '\n\033[1m==> Lint (ruff) and types (mypy), settings in pyproject.toml\033[0m\n'
.venv/bin/ruff check .
.venv/bin/mypy
printf '\n\033[1m==> Tests\033[0m\n'
exec .venv/bin/python -m pytest "$@"
