"""The code's shape stays small: no module under src/ over 400 lines, no function over 60, no
class over 250 (decorators and docstrings included), so that each keeps one job a reader can
hold in mind."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "transporter"
MAX_MODULE, MAX_FUNCTION, MAX_CLASS = 400, 60, 250


def _oversized() -> list[str]:
    found: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        where = path.relative_to(SRC.parent)
        text = path.read_text(encoding="utf-8")
        if (lines := len(text.splitlines())) > MAX_MODULE:
            found.append(f"{where}: {lines} lines (at most {MAX_MODULE})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                size = (node.end_lineno or node.lineno) - first + 1
                limit = MAX_CLASS if isinstance(node, ast.ClassDef) else MAX_FUNCTION
                if size > limit:
                    found.append(
                        f"{where}:{node.lineno} {node.name}: {size} lines (at most {limit})"
                    )
    return found


def test_no_module_function_or_class_outgrows_its_bound() -> None:
    assert _oversized() == []
