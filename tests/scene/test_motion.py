"""Raster-scan timing: motion during a frame shears it row by row."""

from __future__ import annotations

import numpy as np
import pytest

from patchpilot.scene import (
    PipettePose,
    Tissue,
    TissueMotion,
    View,
    render_mean,
    scan_times,
)
from tests.scene.conftest import plain_scene


def _row_centres(velocity_x_um_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Row times and the x (px) of a vertical pipette's darkest line in each shank row
    (the pipette sits on the centre of column 48 at mid-frame)."""
    pose = PipettePose(
        "p", (0.5, 30.0, 0.0), 3.0, 90.0, tip_speck=0.0, velocity_um_s=(velocity_x_um_s, 0, 0)
    )
    scene = plain_scene(pose)
    with_pipette, truth = render_mean(scene)
    signal = with_pipette - render_mean(plain_scene())[0]
    rows = np.arange(20, int(truth[0].y_px) - 3)
    centres = []
    for row in rows:
        dark = -signal[row]
        peak = int(np.argmax(dark))
        window = np.arange(max(peak - 3, 0), min(peak + 4, dark.size))
        weights = np.clip(dark[window], 0, None)
        centres.append(float((window * weights).sum() / weights.sum()))
    times = scan_times(scene.view, scene.acquisition)[rows, 48].astype(np.float64)
    return times, np.array(centres)


def test_moving_pipette_shears_rows_with_scan_time() -> None:
    times, centres = _row_centres(500.0)
    slope_px_s = np.polyfit(times, centres, 1)[0]
    assert slope_px_s == pytest.approx(500.0, rel=0.1)  # 1 µm/px: the offset grows with row time
    still_times, still = _row_centres(0.0)
    assert abs(np.polyfit(still_times, still, 1)[0]) < 10.0


def test_truth_is_the_tip_at_the_frame_mid_time() -> None:
    pose = PipettePose("p", (5.0, 0.0, 0.0), 30.0, 0.0, velocity_um_s=(800.0, 0.0, 0.0))
    scene = plain_scene(pose)
    truth = render_mean(scene)[1][0]
    assert truth.x_um == pytest.approx(5.0)
    later = scene.advanced(0.1)
    assert later.pipettes[0].tip_um[0] == pytest.approx(5.0 + 80.0)
    assert later.time_s == pytest.approx(0.1)
    times = scan_times(scene.view, scene.acquisition)
    assert times.min() == pytest.approx(-times.max(), abs=1e-7)


def test_tissue_motion_displaces_the_background() -> None:
    tissue = Tissue.random(np.random.default_rng(4), extent_um=(200.0, 200.0, 200.0))
    view = View((0.0, 0.0), -40.0, 96, 96, 1.0)
    still = render_mean(plain_scene(tissue=tissue, view=view))[0]
    shifted_motion = TissueMotion(
        heart_amplitude_um=3.0,
        heart_rate_hz=0.0,
        heart_phase=np.pi / 2,
        breath_amplitude_um=0.0,
        direction_deg=0.0,
        axial_fraction=0.0,
    )
    moved = render_mean(plain_scene(tissue=tissue, view=view, tissue_motion=shifted_motion))[0]
    # The tissue moved +3 µm in x: each pixel now sees what was 3 pixels to its left.
    assert np.allclose(moved[:, 10:-3], still[:, 7:-6], rtol=1e-3, atol=1e-3 * still.mean())
    assert not np.allclose(moved, still, rtol=1e-2)
    beating = render_mean(plain_scene(tissue=tissue, view=view, tissue_motion=TissueMotion()))[0]
    assert not np.allclose(beating, still, rtol=1e-3)
