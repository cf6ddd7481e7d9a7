"""Routes and pages parse the request, call a service and render: they never build SQL.

Queries live in each domain's service or `repository.py` (DESIGN.md, Layout)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tutorapp

SRC = Path(tutorapp.__file__).parent
ROUTE_MODULES = sorted(p for p in SRC.rglob("*.py") if p.name in ("api.py", "pages.py"))


def selects_imported(tree: ast.AST) -> list[str]:
    """Each place the module reaches `sqlalchemy.select`: `from sqlalchemy import select`
    (at any depth, e.g. inside a function) or `sqlalchemy.select` / `sa.select`."""
    found: list[str] = []
    aliases = {"sqlalchemy"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname or a.name for a in node.names if a.name == "sqlalchemy"}
    for node in ast.walk(tree):
        if (isinstance(node, ast.ImportFrom) and node.module
                and node.module.split(".")[0] == "sqlalchemy"
                and any(a.name == "select" for a in node.names)):
            found.append(f"line {node.lineno}: from {node.module} import select")
        elif (isinstance(node, ast.Attribute) and node.attr == "select"
              and isinstance(node.value, ast.Name) and node.value.id in aliases):
            found.append(f"line {node.lineno}: {node.value.id}.select")
    return found


def test_there_are_route_modules_to_check() -> None:
    assert len(ROUTE_MODULES) >= 10
    assert SRC / "billing" / "api.py" in ROUTE_MODULES


@pytest.mark.parametrize("path", ROUTE_MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_route_and_page_modules_do_not_query(path: Path) -> None:
    assert selects_imported(ast.parse(path.read_text(), str(path))) == []


@pytest.mark.parametrize("source", [
    "from sqlalchemy import func, select",
    "def f():\n    from sqlalchemy import select\n",
    "import sqlalchemy as sa\nq = sa.select(1)",
    "import sqlalchemy\nq = sqlalchemy.select(1)",
    "from sqlalchemy.future import select",
])
def test_the_check_sees_each_way_to_reach_select(source: str) -> None:
    assert len(selects_imported(ast.parse(source))) == 1


def test_the_check_lets_other_sqlalchemy_imports_pass() -> None:
    assert selects_imported(ast.parse(
        "from sqlalchemy.ext.asyncio import AsyncSession\nfrom sqlalchemy import func")) == []
