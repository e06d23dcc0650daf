#!/usr/bin/env bash
# Sets up whatever is missing, then runs the whole test suite.  Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
printf '\n\033[1m==> Tests\033[0m\n'
exec .venv/bin/python -m pytest "$@"
