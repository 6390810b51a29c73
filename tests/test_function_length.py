"""No function or method in daemon/ or actors/ is longer than 80 lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("daemon", "actors")
MAX_LINES = 80


def _function_lengths(path: Path) -> list[tuple[str, int]]:
    """Return (qualified name, length) for every function in a file.

    The length is counted from the `def` line to the function's last line
    (`end_lineno - lineno + 1` of the def node), so decorators are excluded.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                end = child.end_lineno if child.end_lineno is not None else child.lineno
                found.append((name, end - child.lineno + 1))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def _offenders() -> list[str]:
    """List `path:function lines` for every function over the limit."""
    offenders: list[str] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            for name, lines in _function_lengths(path):
                if lines > MAX_LINES:
                    offenders.append(f"{relative}:{name} {lines}")
    return offenders


def test_no_function_over_80_lines() -> None:
    """Every function and method in daemon/ and actors/ is at most 80 lines long."""
    offenders = _offenders()
    assert not offenders, "functions over 80 lines:\n" + "\n".join(offenders)


def test_measure_counts_def_to_last_line(tmp_path: Path) -> None:
    """The measure counts from the def line to the last line, decorators excluded."""
    source = tmp_path / "sample.py"
    source.write_text(
        "import functools\n"
        "\n"
        "\n"
        "class Box:\n"
        "    @functools.cache\n"
        "    @staticmethod\n"
        "    def size() -> int:\n"
        "        return 1\n"
        "\n"
        "\n"
        "async def outer() -> None:\n"
        "    def inner() -> None:\n"
        "        pass\n"
        "\n"
        "    inner()\n",
        encoding="utf-8",
    )
    assert _function_lengths(source) == [
        ("Box.size", 2),
        ("outer", 5),
        ("outer.inner", 2),
    ]
