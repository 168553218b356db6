"""``patchpilot replay`` and the latency benchmark's plumbing (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from patchpilot.acquisition.benchmark import measure_latency
from patchpilot.cli import app

from .conftest import BrightestSpotLocaliser


def test_replay_command_writes_frames_and_metrics(recorded: Path, tmp_path: Path) -> None:
    out = tmp_path / "replayed"
    result = CliRunner().invoke(
        app, ["replay", str(recorded), "--out", str(out), "--max-frames", "4", "--no-gif"]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frames_replayed"] == 4
    assert sorted(p.name for p in out.glob("*.png")) == [f"frame_0000{i}.png" for i in range(4)]
    assert "frames with a live result" in result.output


def test_replay_command_names_a_bad_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["replay", str(tmp_path)])
    assert result.exit_code == 2
    assert "no NDTiff dataset" in result.output


def test_measure_latency_reports_every_figure(microscope_config: Any) -> None:
    figures = measure_latency(
        0.5, localiser=BrightestSpotLocaliser(), microscope=microscope_config, warmup_frames=2
    )
    assert figures["frames_acquired"] > 0
    assert figures["frames_stored_total"] == figures["frames_acquired_total"]
    assert figures["truncated"] is False
    assert figures["latency_ms_p99"] >= figures["latency_ms_median"] > 0
    with pytest.raises(ValueError, match="positive"):
        measure_latency(0.0, localiser=BrightestSpotLocaliser())
