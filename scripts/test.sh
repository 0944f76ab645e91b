#!/usr/bin/env bash
# One command from a fresh clone: install everything, start the services, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/services.sh
exec .venv/bin/python -m pytest "$@"
