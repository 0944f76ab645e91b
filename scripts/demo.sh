#!/usr/bin/env bash
# Run the demo app from a fresh clone: no services needed (SQLite file + in-memory sessions).
# Open http://127.0.0.1:${PORT:-8000}/ once uvicorn says it is running.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q -e '.[dev]'

exec .venv/bin/python -m uvicorn examples.demo.app:app --host 127.0.0.1 --port "${PORT:-8000}"
