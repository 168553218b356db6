"""The layering rule: each part imports only the layers below it (data flows one way).

config/events/clock/types/scene -> localisation, hardware -> acquisition, control ->
experiment (composition root, dry-run, report, scenarios) -> panel, cli.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "patchpilot"

BOTTOM = {"config", "events", "clock", "types", "scene", "__init__", "py.typed"}
LAYER_OF = {
    **dict.fromkeys(BOTTOM, 0),
    "localisation": 1,
    "hardware": 1,
    "acquisition": 2,
    "control": 2,
    "experiment": 3,
    "dryrun": 3,
    "report": 3,
    "scenarios": 3,
    "panel": 4,
    "cli": 5,
    "__main__": 5,
}
# Levels whose parts may import each other (the bottom's values, the experiment's modules, CLI).
SHARED_LEVELS = {0, 3, 5}
# Same-level parts that must not know each other.
FORBIDDEN = {
    ("localisation", "hardware"),
    ("hardware", "localisation"),
    ("acquisition", "control"),
    ("control", "acquisition"),
}


def _part(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def _imported_parts(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parts: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            pieces = name.split(".")
            if pieces[0] == "patchpilot" and len(pieces) > 1:
                parts.add(pieces[1])
    return parts


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_part_has_a_layer() -> None:
    unknown = {_part(p) for p in SOURCES} - set(LAYER_OF)
    assert not unknown, f"give these modules a layer in tests/test_layers.py: {unknown}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_go_down(path: Path) -> None:
    own = _part(path)
    for other in _imported_parts(path) - {own}:
        assert other in LAYER_OF, f"{path.name} imports unknown part {other}"
        assert LAYER_OF[other] < LAYER_OF[own] or (
            LAYER_OF[other] == LAYER_OF[own] in SHARED_LEVELS
        ), f"{own} (layer {LAYER_OF[own]}) imports {other} (layer {LAYER_OF[other]})"
        assert (own, other) not in FORBIDDEN, f"{own} must not import {other}"
