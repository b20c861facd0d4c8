"""The package's import graph: no circle, and no import from a lower layer to a higher one.

Layers, bottom up (a module may import its own layer's and lower layers' modules):

0. shared helpers: ``conventions``, ``device``, ``memory``, ``parallel``, ``serialise``,
   ``calibrated`` (the stored calibration results),
   ``timing``, ``masks``, ``_version``;
1. data and model: ``io``, ``model``, ``evaluation``;
2. the method's stages, and the phantoms: ``stages``, ``synth``;
3. one case end to end: ``segmenter``;
4. what drives it: ``run`` (folders of cases), ``training``, ``calibration``;
5. the command line ``cli``, and the package root that re-exports the user API.

Imports under ``if TYPE_CHECKING:`` are types only and are not counted; imports inside
functions are.
"""

from __future__ import annotations

import ast
from pathlib import Path

import brats_goat

PACKAGE = Path(brats_goat.__file__).parent
LAYERS: dict[str, int] = {
    **dict.fromkeys(
        (
            "conventions",
            "device",
            "memory",
            "parallel",
            "serialise",
            "timing",
            "masks",
            "calibrated",
        ),
        0,
    ),
    "_version": 0,
    **dict.fromkeys(("io", "model", "evaluation"), 1),
    **dict.fromkeys(("stages", "synth"), 2),
    "segmenter": 3,
    **dict.fromkeys(("run", "training", "calibration"), 4),
    "cli": 5,
    "__init__": 5,
    "__main__": 5,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS["__init__"] if len(parts) == 1 else LAYERS[parts[1]]


def type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports(path: Path) -> set[str]:
    """The ``brats_goat`` modules ``path`` imports (a package's ``__init__`` for a name
    taken from a package)."""
    tree = ast.parse(path.read_text())
    skip = type_checking_lines(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("brats_goat"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("brats_goat"):
            assert node.module is not None
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / sub.replace(".", "/")).with_suffix(".py").exists()
                found.add(sub if is_module else node.module)
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_has_a_layer() -> None:
    unplaced = {m for m in graph() if m != "brats_goat" and m.split(".")[1] not in LAYERS}
    assert not unplaced, f"place these in LAYERS: {sorted(unplaced)}"


def test_no_import_runs_back_up() -> None:
    upward = [
        f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
        for m, targets in graph().items()
        for t in targets
        if layer(t) > layer(m)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_circle() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    circles: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if target == node:
                continue
            if state.get(target) == 1:
                circles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert not circles, "\n".join(circles)
