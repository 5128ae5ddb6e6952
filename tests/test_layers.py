"""STYLE.md section 2: imports only point down the levels; the bottom level imports nothing else from bertkit.

Every import counts, nested ones too (an import inside a function is a dependency all the same), and every
module of the package must sit in a level: a new folder has to be placed here before its imports pass.
Folders on one level do not import each other (training does not borrow from inference: what both need lives
a level down, in the engine), and a CLI command does not borrow from another command.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bertkit"

# Higher number = higher level. A module may import from its own folder or from any lower level.
LEVELS = {
    "cli": 6,
    "serving": 5,
    "client": 5,
    "training": 4,
    "inference": 4,
    "export": 4,  # ONNX export and its session: builds on the engine and tasks; serving's onnx backend uses it
    "engine": 3,  # featurize -> run -> decode; loads and saves task folders
    "feature_cache": 3.5,  # the compact feature store (data, tokenizer, task options); fills through the engine
    "tasks": 2,
    "weights": 1,
    "data": 1,
    "evaluation": 1,
    "prepare": 1,  # inference preparation (packed weights): on the runtime's device and precision rules
    "model": 0,
    "tokenization": 0,
    "runtime": 0,
    "hub": 0,
    "folder": 0,
    "textfile": 0,  # reading users' text and JSON files (gzip, UTF-8, file:line errors), for every level
}
# Bottom-level modules that import nothing from bertkit but each other: paths and names (hub, folder) and
# reading files (textfile). The rest of the bottom level may import them.
PATHS_AND_NAMES = {"hub", "folder", "textfile"}
# The CLI dispatcher imports the command modules; commands do not import each other, except these.
CLI_DISPATCHER = "bertkit/cli/main.py"
CLI_BORROWS: set[tuple[str, str]] = set()


def module_name(path: Path, package: Path = PACKAGE) -> str:
    rel = path.relative_to(package.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, package_root: Path = PACKAGE) -> list[tuple[str, int]]:
    """Every bertkit module the file imports, at any depth (functions, methods, TYPE_CHECKING blocks)."""
    here = module_name(path, package_root).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from bertkit import engine` imports the module bertkit.engine
            found.extend(
                (f"{base}.{alias.name}" if base == "bertkit" else base, node.lineno) for alias in node.names
            )
    return [(m, line) for m, line in found if m.split(".")[0] == "bertkit"]


def top_folder(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def package_files(package: Path = PACKAGE) -> list[Path]:
    return [
        p for p in sorted(package.rglob("*.py")) if p != package / "__init__.py"
    ]  # __init__: the public API


def test_every_module_has_a_level():
    unplaced = sorted({top_folder(module_name(p)) for p in package_files()} - set(LEVELS))
    assert not unplaced, f"folders/modules with no level in LEVELS: {unplaced}"


def violations(package: Path = PACKAGE) -> list[str]:
    bad = []
    for path in package_files(package):
        rel = path.relative_to(package.parent)
        here = top_folder(module_name(path, package))
        for module, line in imports(path, package):
            there = top_folder(module)
            where = f"{rel}:{line} imports {module} ({here} -> {there})"
            if there is None or there == here:
                borrowed = module.startswith("bertkit.cli.") and (str(rel), module) not in CLI_BORROWS
                if here == "cli" and str(rel) != CLI_DISPATCHER and borrowed:
                    bad.append(
                        f"{where}: a command borrows from another command; move the helper to the library"
                    )
                continue
            if there not in LEVELS:
                bad.append(f"{where}: {there} has no level")
            elif LEVELS[there] > LEVELS[here]:
                bad.append(f"{where}: points up")
            elif LEVELS[there] == LEVELS[here] and not (LEVELS[here] == 0 and there in PATHS_AND_NAMES):
                bad.append(f"{where}: sideways, between folders of one level")
    return bad


def test_imports_point_down():
    bad = violations()
    assert not bad, "imports that break the layering:\n" + "\n".join(bad)


def test_the_check_sees_what_it_must(tmp_path):
    """The rule catches a nested import, an upward one, a sideways one and a command borrowing from another."""
    fake = tmp_path / "bertkit"
    for rel, text in {
        "model/bert.py": "def save():\n    from bertkit.weights import load\n",
        "training/loop.py": "from bertkit.inference.predictor import featurize\n",
        "cli/eval.py": "def run():\n    from bertkit.cli.train import column\n",
        "export/onnx.py": "from ..engine import featurize\nfrom bertkit import folder\n",
    }.items():
        (fake / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake / rel).write_text(text)
    found = "\n".join(violations(fake))
    assert "bertkit/model/bert.py:2 imports bertkit.weights (model -> weights): points up" in found
    assert "training/loop.py:1 imports bertkit.inference.predictor (training -> inference): sideways" in found
    assert "cli/eval.py:2 imports bertkit.cli.train (cli -> cli): a command borrows" in found
    assert (
        "export/onnx.py" not in found
    )  # relative and `from bertkit import x` imports resolve to lower levels
