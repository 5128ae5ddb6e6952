"""STYLE.md section 2: imports only point down the levels; the bottom level imports nothing else from bertkit.

Module-level imports only: `from_pretrained` / `save_pretrained` in model/bert.py import bertkit.weights inside
the method on purpose (the model stays free of file formats, and users still get Model.from_pretrained).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bertkit"

# Higher number = higher level. A module may import from its own level-folder or any lower level.
LEVELS = {
    "cli": 6,
    "serving": 5,
    "client": 5,
    "training": 4,
    "inference": 4,
    "engine": 3,
    "feature_cache": 3,
    "tasks": 2,
    "weights": 1,
    "data": 1,
    "evaluation": 1,
    "model": 0,
    "tokenization": 0,
    "runtime": 0,
    "hub": 0,
    "folder": 0,
}


def top_folder(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "bertkit" else None


def module_imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in tree.body:  # module level only
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.If):  # TYPE_CHECKING blocks count too
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom) and sub.module:
                    found.append((sub.module, sub.lineno))
    return found


def test_imports_point_down():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent)
        here = rel.parts[1].removesuffix(".py") if len(rel.parts) > 1 else None
        if here not in LEVELS:  # bertkit/__init__.py re-exports the public API
            continue
        for module, line in module_imports(path):
            there = top_folder(module)
            if there is None or there == here or there not in LEVELS:
                continue
            same_bottom = LEVELS[here] == 0 and LEVELS[there] == 0 and there not in ("hub", "folder")
            if LEVELS[there] > LEVELS[here] or same_bottom:
                bad.append(f"{rel}:{line} imports {module} ({here} -> {there})")
    assert not bad, "imports that point up the levels:\n" + "\n".join(bad)
