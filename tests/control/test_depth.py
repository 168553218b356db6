"""Tip depth from where the shank crosses the focal plane: on the stand-in camera's shanks,
on the two-photon scene renderer (above and inside the tissue), and the failures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from patchpilot.control.calibration import CalibrationError
from patchpilot.control.depth import (
    DepthOutOfRange,
    DepthSettings,
    DepthSweep,
    FocusError,
    ShankOutOfView,
    axis_profile,
    depth_from_profiles,
)
from patchpilot.control.tip_search import CalibrationSettings, PipetteAngles, measure_tip_3d
from patchpilot.scene import (
    Acquisition,
    Optics,
    PipettePose,
    Scene,
    Tissue,
    TissueMotion,
    View,
    render,
)
from patchpilot.types import Frame, TipDetection
from tests.control.sim_imaging import draw_shank


def _sweep_stand_in(
    tip: np.ndarray, pitch_deg: float, yaw_deg: float, guess_um: float, seed: int
) -> DepthSweep:
    rng = np.random.default_rng(seed)
    xy = tip[:2] + rng.normal(0.0, 0.2, 2)  # the localiser's x, y
    sweep = DepthSweep(xy, pitch_deg, yaw_deg, guess_um, DepthSettings(frames_per_step=1))
    index = 0
    while (focus := sweep.next_focus_um) is not None:
        index += 1
        image = 50.0 + rng.normal(0.0, 2.0, (160, 160))
        frame = Frame(image, index, index / 30, 1.0, (0.0, 0.0), focus)
        draw_shank(image, frame, tip, pitch_deg, yaw_deg)
        sweep.add(frame)
    return sweep


@pytest.mark.parametrize(
    ("pitch_deg", "yaw_deg", "guess_offset_um"),
    [(30.0, 45.0, 0.0), (25.0, 200.0, -4.0), (40.0, 300.0, 4.5), (35.0, 120.0, 2.0)],
)
def test_stand_in_shanks(pitch_deg: float, yaw_deg: float, guess_offset_um: float) -> None:
    tip = np.array([8.0, -5.0, 37.3])
    sweep = _sweep_stand_in(tip, pitch_deg, yaw_deg, tip[2] + guess_offset_um, seed=int(yaw_deg))
    estimate = sweep.estimate()
    assert estimate.z_um == pytest.approx(tip[2], abs=0.8)
    assert estimate.score > 1.0


def test_sweep_visits_each_focus_for_its_frames() -> None:
    sweep = DepthSweep((0.0, 0.0), 30.0, 0.0, 10.0, DepthSettings(frames_per_step=2))
    assert sweep.focuses[0] == pytest.approx(7.0) and sweep.focuses[-1] == pytest.approx(23.0)
    seen = []
    while (focus := sweep.next_focus_um) is not None:
        seen.append(focus)
        sweep.add(Frame(np.full((64, 64), 50.0), len(seen), 0.0, 1.0, (0.0, 0.0), focus))
    assert seen == [f for f in sweep.focuses for _ in range(2)]
    assert sweep.complete
    with pytest.raises(FocusError, match="no clear shank crossing"):
        sweep.estimate()  # a flat image shows no shank


def test_the_tip_beyond_the_search_says_which_way() -> None:
    tip = np.array([0.0, 0.0, 20.0])
    sweep = _sweep_stand_in(tip, 30.0, 0.0, tip[2] + 7.0, seed=3)  # searched 1-13 µm above
    with pytest.raises(DepthOutOfRange) as raised:
        sweep.estimate()
    assert raised.value.direction == -1


def test_a_shank_leaving_the_image_is_told_apart() -> None:
    """A tip 5 µm inside the frame's edge with its shank running out of it (the 160 µm frame
    ends at x = 79.5 µm; yaw 180: the shank lies toward +x)."""
    tip = np.array([74.5, 0.0, 20.0])
    sweep = _sweep_stand_in(tip, 30.0, 180.0, tip[2], seed=5)
    with pytest.raises(ShankOutOfView, match="leaves the image"):
        sweep.estimate()
    inside = _sweep_stand_in(np.array([-40.0, 0.0, 20.0]), 30.0, 180.0, 20.0, seed=5)
    assert inside.estimate().z_um == pytest.approx(20.0, abs=0.8)  # the same, well inside


def test_bad_inputs_are_named() -> None:
    along = DepthSettings().profile_um()
    with pytest.raises(FocusError, match="2 focus positions but 1 profiles"):
        depth_from_profiles([0.0, 1.0], [np.zeros(along.size)], along, 30.0, 0.0)
    with pytest.raises(FocusError, match="non-finite"):
        depth_from_profiles([math.nan], [np.zeros(along.size)], along, 30.0, 0.0)
    frame = Frame(np.zeros((8, 8, 3)), 0, 0.0, 1.0)
    with pytest.raises(FocusError, match="2-D"):
        axis_profile(frame, (0.0, 0.0), 0.0, along)
    with pytest.raises(ValueError, match="bad depth sweep"):
        DepthSettings(above_um=5.0)


def _rendered_sweep(
    tissue: Tissue, tip: tuple[float, float, float], pitch_deg: float, yaw_deg: float, seed: int
) -> float:
    rng = np.random.default_rng(seed)
    xy = np.array(tip[:2]) + rng.normal(0.0, 0.3, 2)
    sweep = DepthSweep(xy, pitch_deg, yaw_deg, tip[2] + rng.uniform(-3.0, 3.0))
    pose = PipettePose("P", tip, pitch_deg, yaw_deg)
    t_s = float(rng.uniform(0.0, 50.0))
    while (focus := sweep.next_focus_um) is not None:
        scene = Scene(
            tissue=tissue,
            pipettes=(pose,),
            view=View((0.0, 0.0), focus, 256, 256, 1.0),
            optics=Optics(),
            acquisition=Acquisition(),
            time_s=t_s,
            tissue_motion=TissueMotion(),
        )
        image, _ = render(scene, rng)
        sweep.add(Frame(image, 0, t_s, 1.0, (0.0, 0.0), focus))
        t_s += 1 / 30
    return sweep.estimate().z_um - tip[2]


def test_rendered_two_photon_frames_above_and_inside_the_tissue() -> None:
    """The simulated microscope's frames (shot noise, tissue texture and motion): the depth is
    read to well under a micrometre in the bath above the brain and inside it."""
    tissue = Tissue.random(np.random.default_rng(7))
    cases = [
        ((-40.0, -35.0, 62.0), 30.0, 45.0),
        ((50.0, -20.0, 48.0), 32.0, 135.0),
        ((10.0, 20.0, -40.0), 28.0, 225.0),
        ((-20.0, 30.0, -75.0), 35.0, 315.0),
    ]
    errors = [
        _rendered_sweep(tissue, tip, pitch, yaw, seed)
        for seed, (tip, pitch, yaw) in enumerate(cases)
    ]
    assert max(abs(e) for e in errors) <= 1.0, errors
    assert abs(float(np.median(errors))) <= 0.5, errors


class _ShallowFocusImaging:
    """Sees no tip anywhere and, like the real imaging, refuses focuses below -50 µm."""

    def __init__(self) -> None:
        self.focus_um = 0.0
        self.asked: list[float] = []

    def snap(self, focus_um: float | None = None) -> tuple[Frame, list[TipDetection]]:
        assert focus_um is not None
        self.asked.append(focus_um)
        if focus_um < -50.0:
            raise ValueError(f"focus {focus_um} µm is not a finite value within [-50, 400] µm")
        self.focus_um = focus_um
        frame = Frame(np.zeros((64, 64), np.uint16), len(self.asked), 0.0, 1.0, focus_um=focus_um)
        return frame, []


def test_a_search_beyond_the_focus_travel_fails_as_a_calibration_error() -> None:
    """Focuses the drive cannot reach are skipped; the search ends in a CalibrationError
    naming what was not found (never the imaging's ValueError, which would end the run)."""
    imaging = _ShallowFocusImaging()
    settings = CalibrationSettings()
    with pytest.raises(CalibrationError, match="no tip within"):
        measure_tip_3d(imaging, np.array([0.0, 0.0, 0.0]), 10.0, settings, PipetteAngles(30.0, 0.0))
    assert max(imaging.asked) >= settings.search_step_um  # went on above after the refusal
    assert any(f < -50.0 for f in imaging.asked)  # and did try below, once per focus
    assert sum(f < -50.0 for f in imaging.asked) == len({f for f in imaging.asked if f < -50.0})
