"""The state-machine diagrams and the plan command."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from patchpilot.cli import app
from patchpilot.control.diagram import mermaid_text, write_docs
from patchpilot.control.states import CoordinatorState, PipetteState
from tests.control.conftest import SIM_4


def test_mermaid_lists_every_state_and_trigger() -> None:
    text = mermaid_text("pipette")
    assert text.count("stateDiagram-v2") == 1
    for state in PipetteState:
        assert f"as {state.name}" in text
    assert "take_over" in text and "[is_calibrated]" in text
    assert "pause_all" in mermaid_text("coordinator")
    assert all(f"as {s.name}" in mermaid_text("coordinator") for s in CoordinatorState)


def test_write_docs(tmp_path: Path) -> None:
    markdown, png = write_docs(tmp_path)
    assert "```mermaid" in markdown.read_text(encoding="utf-8")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_plan_command(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "plan.png"
    result = runner.invoke(
        app,
        [
            "control",
            "plan",
            str(SIM_4),
            "--target",
            "P1=-20,-20,-60",
            "--target",
            "P3=20,20,-50",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "standoff" in result.output and "order: P1 travel" in result.output
    assert out.exists()
    refused = runner.invoke(app, ["control", "plan", str(SIM_4), "--target", "P1=900,0,-60"])
    assert refused.exit_code == 1 and "field of view" in refused.output
    bad = runner.invoke(app, ["control", "plan", str(SIM_4), "--target", "P1=1,2"])
    assert bad.exit_code == 2
