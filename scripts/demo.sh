#!/usr/bin/env bash
# Sets up whatever is missing, then runs the services and the demo stream.  Extra arguments go to demo.py.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
printf '\n\033[1m==> Demo\033[0m\n'
exec .venv/bin/python scripts/demo.py "$@"
