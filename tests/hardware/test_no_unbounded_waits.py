"""No wait without a timeout anywhere in ``patchpilot/hardware`` (or the clock it waits on).

Flags calls to ``wait``/``join``/``get``/``acquire``/``result`` with neither a positional
argument nor a ``timeout`` keyword, ``sleep`` without a duration, and ``while True`` loops whose
body never mentions a deadline or timeout.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import patchpilot

PACKAGE = Path(patchpilot.__file__).parent
SOURCES = [*sorted((PACKAGE / "hardware").rglob("*.py")), PACKAGE / "clock.py"]
BLOCKING = {"wait", "join", "get", "acquire", "result", "read_until"}
BOUNDED_LOOP_WORDS = ("deadline", "timeout")
# Loops bounded by their data, not by time (checked by reading them):
DATA_BOUNDED = {("clock.py", "advance_to")}


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []
    functions = {
        id(node): parent.name
        for parent in ast.walk(tree)
        if isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(parent)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            has_timeout = bool(node.args) or any(k.arg == "timeout" for k in node.keywords)
            if name in BLOCKING and not has_timeout:
                found.append((node.lineno, f".{name}() without a timeout"))
        if (
            isinstance(node, ast.While)
            and isinstance(node.test, ast.Constant)
            and node.test.value is True
        ):
            words = {
                sub.id if isinstance(sub, ast.Name) else sub.attr
                for sub in ast.walk(node)
                if isinstance(sub, (ast.Name, ast.Attribute))
            }
            bounded = any(w in word for word in words for w in BOUNDED_LOOP_WORDS)
            if not bounded and (path.name, functions.get(id(node))) not in DATA_BOUNDED:
                found.append((node.lineno, "while True without a deadline"))
    return [f"{path.name}:{line} {what}" for line, what in sorted(found)]


def test_the_scan_sees_the_hardware_sources() -> None:
    names = {path.name for path in SOURCES}
    assert {"_protocol.py", "simulated.py", "sensapex.py", "driver.py", "_wire.py"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_wait_has_a_timeout(path: Path) -> None:
    assert _violations(path) == []


def test_the_scan_catches_what_it_should(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f(e, t, q):\n"
        "    e.wait()\n"
        "    t.join()\n"
        "    q.get()\n"
        "    while True:\n"
        "        pass\n"
        "    e.wait(1.0)\n"
        "    t.join(timeout=2)\n"
        "    while True:\n"
        "        if now > deadline_s:\n"
        "            break\n",
        encoding="utf-8",
    )
    assert [v.split(" ", 1)[1] for v in _violations(bad)] == [
        ".wait() without a timeout",
        ".join() without a timeout",
        ".get() without a timeout",
        "while True without a deadline",
    ]
