"""The layers of docs/architecture.md hold: the lower layers (records and rules, the store, the
re-key engine, the review workbook, the browser and page objects, the desktop driver) never
import the layers that run them (running, timetables, the group, the CLI, the console), so each
can be used and tested without them. Imports under ``if TYPE_CHECKING:`` name types only."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "dealerbot"
LOWER = ("data", "store", "rekey", "review", "web", "pages", "desktop")
UPPER = ("running", "schedule", "group", "cli", "console")


def _runtime_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """Every module imported outside ``if TYPE_CHECKING:`` blocks, with its line."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_no_lower_layer_imports_a_layer_above_it():
    reaches = []
    for layer in LOWER:
        for path in sorted((SRC / layer).rglob("*.py")):
            for line, module in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
                if any(module == f"dealerbot.{up}" or module.startswith(f"dealerbot.{up}.") for up in UPPER):
                    reaches.append(f"{path.relative_to(SRC)}:{line} imports {module}")
    assert reaches == [], "\n".join(reaches)
