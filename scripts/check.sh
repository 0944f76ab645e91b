#!/usr/bin/env bash
# Static gates: lint, format, strict typing, and the import-direction contracts.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check src tests examples
.venv/bin/ruff format --check src tests examples
.venv/bin/mypy src
.venv/bin/lint-imports
