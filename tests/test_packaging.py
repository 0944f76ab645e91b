"""The package's extras name what they enable, and nothing installs a dependency no code uses."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

tomllib: Any = pytest.importorskip("tomllib")  # Python 3.11+


def extras() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return dict(project["optional-dependencies"])


def source() -> str:
    return "\n".join(p.read_text() for p in (ROOT / "src" / "crudauth").rglob("*.py"))


def test_every_feature_extra_is_used_by_the_package() -> None:
    # The distribution each extra brings, and the module the package imports from it.
    modules = {
        "redis": "redis",
        "cryptography": "cryptography",
        "user-agents": "user_agents",
        "pyotp": "pyotp",
        "opentelemetry-api": "opentelemetry",
        "authlib": "authlib",
        "joserfc": "joserfc",
        "httpx": "httpx",
    }
    code = source()
    for name, requirements in extras().items():
        if name in ("all", "dev", "docs"):  # tooling, not features of the package
            continue
        distributions = [re.split(r"[<>=;\[ ]", r, maxsplit=1)[0] for r in requirements]
        used = [
            d
            for d in distributions
            if d in modules and re.search(rf"^\s*(from|import) {modules[d]}\b", code, re.M)
        ]
        assert used == [d for d in distributions if d in modules] and used, (name, requirements)


def test_extras_are_the_features_that_exist() -> None:
    assert set(extras()) == {
        "redis",
        "jwt-keys",
        "useragent",
        "mfa",
        "otel",
        "oauth",
        "all",
        "dev",
        "docs",
    }
    assert extras()["all"] == ["crudauth[redis,jwt-keys,useragent,mfa,otel,oauth]"]


def test_the_package_imports_without_the_oauth_extra() -> None:
    # Authlib and httpx load only when oauth= is used (or crudauth.oauth's providers are).
    code = (
        "import sys, crudauth, crudauth.oauth;"
        "from crudauth import OAuthCredentials, OAuthAccountService;"
        "print(sorted(m for m in ('authlib', 'httpx', 'joserfc') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_docs_extra_pins_the_site_build_tools() -> None:
    pinned = {re.split(r"[=\[]", r, maxsplit=1)[0]: r for r in extras()["docs"]}
    assert set(pinned) == {"mkdocs", "mkdocs-material", "mkdocstrings", "mkdocstrings-python"}
    assert all("==" in r for r in pinned.values()), pinned
    assert "crudauth[all,docs]" in extras()["dev"]


def test_the_mfa_extra_installs_exactly_totp_and_encryption() -> None:
    assert sorted(r.split(">=")[0] for r in extras()["mfa"]) == ["cryptography", "pyotp"]


def test_missing_libraries_point_at_their_extras() -> None:
    code = source()
    assert "crudauth[jwt-keys]" in code and "crudauth[mfa]" in code
