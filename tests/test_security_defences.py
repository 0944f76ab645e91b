"""docs/security-defences.md stays true: every defence has tests, every test exists, and the
page is what ``tools/docs/security_defences.py`` renders from ``tests/defences.py``."""

from __future__ import annotations

import ast
import importlib.util
from functools import cache
from pathlib import Path
from types import ModuleType

from tests.defences import DEFENCES

ROOT = Path(__file__).resolve().parents[1]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "security_defences", ROOT / "tools" / "docs" / "security_defences.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def _tests_in(path: str) -> frozenset[str]:
    """``name`` and ``Class::name`` of every test function defined in ``path``."""
    tree = ast.parse((ROOT / path).read_text())
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.add(node.name)
        elif isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    found.add(f"{node.name}::{member.name}")
    return frozenset(name for name in found if name.split("::")[-1].startswith("test_"))


def test_every_listed_proof_is_an_existing_test() -> None:
    missing = []
    for defence in DEFENCES:
        for test_id in defence.tests:
            path, _, name = test_id.partition("::")
            if not (ROOT / path).is_file() or name not in _tests_in(path):
                missing.append(test_id)
    assert missing == []


def test_every_defence_has_a_proof_and_a_claim() -> None:
    assert all(d.tests and d.threat and d.defence and d.area for d in DEFENCES)
    assert len({d.threat for d in DEFENCES}) == len(DEFENCES)


def test_the_defences_page_is_up_to_date() -> None:
    generator = _generator()
    expected = generator.render(DEFENCES)
    actual = (ROOT / "docs" / "security-defences.md").read_text()
    assert actual == expected, "run: python tools/docs/security_defences.py"
