#!/usr/bin/env bash
# Static gates: lint, format, strict typing, the import-direction contracts, and the
# documentation site (broken links, missing pages and reference errors fail the build).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check src tests examples tools
.venv/bin/ruff format --check src tests examples tools
.venv/bin/mypy src
.venv/bin/lint-imports
site_dir=$(mktemp -d)
trap 'rm -rf "$site_dir"' EXIT
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$site_dir"
