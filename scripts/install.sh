#!/usr/bin/env bash
# Install everything the tests need into .venv (idempotent). Chromium comes from Debian's
# packages: browser test tools cannot download their own browser here.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "warning: chromium is missing and cannot be installed; browser tests will fail" >&2
  fi
fi

# The OpenID Connect provider the OAuth tests sign in at (npm `oidc-provider`, tests/oidc).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "error: node and npm are required (Node.js 20.19+): the OAuth tests run a real" \
    "OpenID Connect provider from tests/oidc" >&2
  exit 1
fi
# npm writes node_modules/.package-lock.json at the end of an install: newer than the lockfile
# means the tree is already what the lockfile says.
if [ ! tests/oidc/node_modules/.package-lock.json -nt tests/oidc/package-lock.json ]; then
  (cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
