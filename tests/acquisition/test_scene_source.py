"""The simulated camera renders the pipettes where the simulated manipulators really are."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from patchpilot.acquisition.devices import RenderRequest
from patchpilot.acquisition.scene_source import SceneImageSource
from patchpilot.acquisition.simulated_acquisition import SimulatedAcquisition
from patchpilot.clock import RealClock
from patchpilot.config import RigConfig, load_config
from patchpilot.events import EventLog
from patchpilot.hardware import Manipulator, create_manipulators
from patchpilot.types import Frame

from .conftest import BrightestSpotLocaliser

SIM4 = Path(__file__).resolve().parents[2] / "configs" / "sim-4.yaml"


@pytest.fixture
def rig() -> RigConfig:
    return load_config(SIM4)


@pytest.fixture
def manipulators(rig: RigConfig) -> Iterator[dict[str, Manipulator]]:
    devices = create_manipulators(rig, log=EventLog(), clock=RealClock())
    yield devices
    for device in devices.values():
        device.close()


def test_frames_show_the_tips_where_the_manipulators_are(
    rig: RigConfig, manipulators: dict[str, Any]
) -> None:
    source = SceneImageSource.from_rig(rig, manipulators)
    frames: list[Frame] = []
    with SimulatedAcquisition(
        rig.microscope,
        BrightestSpotLocaliser(),
        source=source,
        real_time=False,
        focus_um=60.0,
        max_frames=3,
    ) as system:
        system.subscribe(lambda frame, detections: frames.append(frame))
        assert system.live.wait(30.0)
    frame = frames[-1]
    assert frame.image.dtype == np.uint16 and frame.image.shape == (256, 256)
    truth = source.truth(frame.index)
    assert truth is not None and [t.pipette_id for t in truth] == ["P1", "P2", "P3", "P4"]
    for tip in truth:
        true_um = manipulators[tip.pipette_id].true_tip_sample_um()
        assert frame.sample_to_pixel(true_um[0], true_um[1]) == pytest.approx(
            (tip.x_px, tip.y_px), abs=0.2
        )
        assert tip.in_focus  # the tips hang 60 µm above the surface, where we focused
    # The glass shows: just behind each tip, along its shank, the frame is darker than a
    # tissue-only render (the dark pipette excludes the dye); the field's middle is not.
    empty = SceneImageSource([], source.tissue, seed=5).render(
        RenderRequest((0.0, 0.0), 60.0, 0.0, (256, 256), 1.0, 0)
    )

    def deficit(x: float, y: float) -> float:
        window = np.s_[round(y) - 5 : round(y) + 6, round(x) - 5 : round(x) + 6]
        return float(empty[window].mean() - frame.image[window].astype(float).mean())

    assert abs(deficit(128, 128)) < 20
    for tip in truth:
        yaw = math.radians(rig.pipette(tip.pipette_id).yaw_deg)
        assert deficit(tip.x_px - 15 * math.cos(yaw), tip.y_px - 15 * math.sin(yaw)) > 40


def test_a_move_moves_the_rendered_tip(rig: RigConfig, manipulators: dict[str, Any]) -> None:
    source = SceneImageSource.from_rig(rig, manipulators)
    request = RenderRequest((0.0, 0.0), 60.0, 0.0, (256, 256), 1.0, 0)
    source.render(request)
    before = source.truth(0)
    handle = manipulators["P1"].move_by([30.0, 0.0, 0.0], speed_um_s=2000.0)
    handle.wait(5.0)
    source.render(RenderRequest((0.0, 0.0), 60.0, 0.1, (256, 256), 1.0, 1))
    after = source.truth(1)
    assert before is not None and after is not None
    moved = np.hypot(after[0].x_um - before[0].x_um, after[0].y_um - before[0].y_um)
    assert moved == pytest.approx(30.0, abs=3.0)  # scale errors and backlash: not exact
    assert after[1] == before[1] or after[1].x_um == pytest.approx(before[1].x_um, abs=0.5)


def test_only_simulated_manipulators_can_be_rendered(
    rig: RigConfig, manipulators: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="no manipulator"):
        SceneImageSource.from_rig(rig, {k: v for k, v in manipulators.items() if k != "P2"})
    with pytest.raises(ValueError, match="no true tip"):
        SceneImageSource.from_rig(rig, {**manipulators, "P3": object()})
