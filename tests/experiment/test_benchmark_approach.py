"""``patchpilot benchmark approach``: random closed-loop scenarios on a simulated clock, and the
rendered imaging (scene renderer + localiser) that gives its honest figure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from patchpilot.cli import app
from patchpilot.clock import SimClock
from patchpilot.config import RigConfig, load_config
from patchpilot.events import EventLog
from patchpilot.hardware.factory import create_manipulators
from patchpilot.scenarios import run_scenario
from patchpilot.scenarios.rendered import RenderedImaging
from patchpilot.types import TipDetection

ROOT = Path(__file__).resolve().parents[2]
KEYS = {
    "success_rate",
    "final_error_um_median",
    "final_error_um_p95",
    "collisions",
    "nogo_entries",
    "lateral_moves_in_tissue",
    "scenarios",
}


def test_the_command_runs_scenarios_and_writes_the_figures(tmp_path: Path) -> None:
    out = tmp_path / "approach.json"
    result = CliRunner().invoke(
        app,
        ["benchmark", "approach", "--scenarios", "2", "--seed", "11", "--json", str(out)],
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert set(figures) >= KEYS
    assert figures["scenarios"] == 2 and figures["imaging"] == ["standin"]
    assert figures["success_rate"] == 1.0, figures["failures"]
    assert figures["collisions"] == figures["nogo_entries"] == 0
    assert figures["lateral_moves_in_tissue"] == 0
    assert 0.0 < figures["final_error_um_median"] <= 1.0
    assert figures["final_error_um_median"] <= figures["final_error_um_p95"] <= 2.0
    assert figures["simulated_s"] > 20.0 and figures["wall_s"] > 0.0
    assert figures["approaches"] >= 4  # 2 to 4 pipettes each
    assert "success rate: 1.000" in result.output
    assert "seed 12" in result.output


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (["--imaging", "camera"], "camera"),
        (["--scenarios", "0"], "scenarios"),
        (["--mode", "fresh"], "fresh"),
    ],
)
def test_bad_arguments_are_refused(arguments: list[str], words: str) -> None:
    result = CliRunner().invoke(app, ["benchmark", "approach", *arguments])
    assert result.exit_code == 2
    assert words in result.output


def test_run_scenario_refuses_what_it_cannot_run() -> None:
    with pytest.raises(ValueError, match="mode"):
        run_scenario(1, "fresh")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="imaging"):
        run_scenario(1, imaging="camera")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2 to 4"):
        run_scenario(1, n_pipettes=5)


class _Recorder:
    """Records what the localiser is given; finds nothing."""

    def __init__(self) -> None:
        self.images: list[Any] = []

    def localise(self, image: Any, pixel_size_um: float) -> list[TipDetection]:
        self.images.append((image, pixel_size_um))
        return []


def _rig() -> tuple[RigConfig, SimClock, dict[str, Any]]:
    config = load_config(ROOT / "configs" / "sim-4.yaml")
    clock = SimClock()
    manipulators = create_manipulators(config, log=EventLog(tail_size=10), clock=clock)
    return config, clock, dict(manipulators)


def test_rendered_imaging_renders_the_tips_where_they_physically_are() -> None:
    config, clock, manipulators = _rig()
    recorder = _Recorder()
    imaging = RenderedImaging(config, manipulators, clock, recorder, seed=3)
    tip = manipulators["P1"].true_tip_sample_um()
    frame, detections = imaging.snap(float(tip[2]))
    assert detections == []
    assert clock.now() == pytest.approx(1.0 / config.microscope.frame_rate_hz)
    assert frame.focus_um == pytest.approx(float(tip[2])) and frame.index == 1
    assert frame.image.dtype == np.uint16 and frame.image.shape == (256, 256)
    ((given, pixel_size_um),) = recorder.images
    assert given is frame.image and pixel_size_um == 1.0
    # Rendered where P1 physically is, in focus (P1 is its own truth's only source here).
    x_px, y_px = frame.sample_to_pixel(float(tip[0]), float(tip[1]))
    truth = {t.pipette_id: t for t in imaging.source.truth(frame.index) or []}
    assert sorted(truth) == ["P1", "P2", "P3", "P4"]
    assert truth["P1"].in_focus and truth["P1"].in_frame
    assert (truth["P1"].x_px, truth["P1"].y_px) == pytest.approx((x_px, y_px), abs=0.05)
    with pytest.raises(ValueError, match="focus"):
        imaging.snap(float("nan"))
    with pytest.raises(ValueError, match="focus"):
        imaging.snap(5000.0)
    assert imaging.snaps == 1 and clock.now() == pytest.approx(1.0 / 30.0)


def test_shipped_localiser_finds_the_in_focus_tips_of_rendered_frames() -> None:
    from patchpilot.localisation import LocaliserError
    from patchpilot.scenarios import shipped_localiser

    try:
        localiser = shipped_localiser()
    except LocaliserError as exc:
        pytest.skip(f"no shipped localiser yet: {exc}")
    config, clock, manipulators = _rig()
    imaging = RenderedImaging(config, manipulators, clock, localiser, seed=5)
    found = 0
    for name in ("P1", "P2", "P3", "P4"):
        tip = manipulators[name].true_tip_sample_um()
        frame, detections = imaging.snap(float(tip[2]))
        distances = [
            np.hypot(*(np.asarray(frame.pixel_to_sample_um(d.x_px, d.y_px)) - tip[:2]))
            for d in detections
        ]
        found += bool(distances) and min(distances) <= 2.0
    assert found >= 3, "the shipped localiser should find most in-focus tips within 2 µm"
