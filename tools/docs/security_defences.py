"""Write docs/security-defences.md from the list of defences in tests/defences.py.

Run ``python tools/docs/security_defences.py`` after changing that list;
``tests/test_security_defences.py`` fails while the page is stale.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "security-defences.md"

HEADER = """\
# Defences and their tests

Each defence crudauth claims, the threat it answers, and the tests that fail if it is weakened.
The [threat model](security.md) says what an attacker is assumed to control. This page is
generated from `tests/defences.py` by `python tools/docs/security_defences.py`;
`tests/test_security_defences.py` fails when a listed test is renamed or removed, or when this
page no longer matches the list. Run one proof with
`pytest "tests/test_csrf.py::test_csrf_cookie_alone_is_not_enough"`.
"""


class Defence(Protocol):
    """What the page reads of ``tests.defences.Defence``."""

    @property
    def area(self) -> str: ...
    @property
    def threat(self) -> str: ...
    @property
    def defence(self) -> str: ...
    @property
    def tests(self) -> Sequence[str]: ...


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(defences: Iterable[Defence]) -> str:
    """The page's Markdown for ``defences``, grouped by area in the order they come."""
    areas: dict[str, list[Defence]] = {}
    for item in defences:
        areas.setdefault(item.area, []).append(item)
    lines = [HEADER]
    for area, items in areas.items():
        lines += [f"## {area}", "", "| Threat | Defence | Proved by |", "|---|---|---|"]
        for d in items:
            proofs = "<br>".join(f"`{_cell(t)}`" for t in d.tests)
            lines.append(f"| {_cell(d.threat)} | {_cell(d.defence)} | {proofs} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    """Rewrite the page."""
    sys.path.insert(0, str(ROOT))
    from tests.defences import DEFENCES

    PAGE.write_text(render(DEFENCES))
    print(f"wrote {PAGE.relative_to(ROOT)} ({len(DEFENCES)} defences)")


if __name__ == "__main__":
    main()
