"""What a rendered frame shows: tips where the labels say, geometry-driven defocus."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from patchpilot.scene import PipettePose, View, render, render_clean, render_mean
from patchpilot.types import Frame
from tests.scene.conftest import plain_scene


def _signal(pose: PipettePose, **changes: object) -> np.ndarray:
    """Expected photons with the pipette minus those without it."""
    with_pipette, _ = render_mean(plain_scene(pose, **changes))
    without, _ = render_mean(plain_scene(**changes))
    return with_pipette - without


@pytest.mark.parametrize("speck", [0.0, 1.0])
def test_bright_pipette_is_brightest_at_its_labelled_tip(speck: float) -> None:
    pose = PipettePose("p", (5.3, -7.6, 0.0), 25.0, 30.0, polarity="bright", tip_speck=speck)
    signal = _signal(pose)
    truth = render_mean(plain_scene(pose))[1][0]
    row, col = np.unravel_index(np.argmax(signal), signal.shape)
    assert np.hypot(col - truth.x_px, row - truth.y_px) <= 2.5
    # Along the axis the glow peaks just behind the tip and has fallen to half at the tip.
    unit = np.array([np.cos(np.pi / 6), np.sin(np.pi / 6)])
    steps = np.arange(-10.0, 5.0, 0.1)
    points = np.array([truth.x_px, truth.y_px])[:, None] + unit[:, None] * steps[None, :]
    profile = ndimage.map_coordinates(signal, [points[1], points[0]], order=1)
    peak = int(np.argmax(profile))
    assert -3.0 <= steps[peak] <= 0.5
    end = steps[peak + int(np.argmax(profile[peak:] < 0.5 * profile[peak]))]
    assert abs(end) <= 1.0
    # The shank rises out of focus: 25 µm back along it, the glow is far dimmer.
    back = np.array([truth.x_px, truth.y_px]) - 25 * np.array(
        [np.cos(np.pi / 6), np.sin(np.pi / 6)]
    )
    assert signal[round(back[1]), round(back[0])] < 0.5 * signal.max()
    # Nothing of the pipette lies ahead of its tip.
    ahead = np.array([truth.x_px, truth.y_px]) + 6 * np.array(
        [np.cos(np.pi / 6), np.sin(np.pi / 6)]
    )
    assert abs(signal[round(ahead[1]), round(ahead[0])]) < 0.05 * signal.max()


def test_dark_pipette_excludes_dye_at_the_tip() -> None:
    pose = PipettePose("p", (0.0, 0.0, 0.0), 20.0, 0.0, polarity="dark", tip_speck=0.0)
    signal = _signal(pose)
    truth = render_mean(plain_scene(pose))[1][0]
    row = round(truth.y_px)
    line = signal[row]
    # Darker a few µm up the shank than ahead of the tip.
    assert line[round(truth.x_px) - 4] < -0.2 * np.abs(signal).max()
    assert abs(line[round(truth.x_px) + 5]) < 0.05 * np.abs(signal).max()


def test_labels_convert_between_pixels_and_micrometres_off_centre() -> None:
    view = View(
        fov_center_um=(123.4, -56.7), focus_um=-20.0, width_px=120, height_px=80, pixel_size_um=0.7
    )
    tip = (123.4 + 9.1, -56.7 - 12.3, -20.0)
    pose = PipettePose("p", tip, 30.0, 200.0, polarity="dark", tip_speck=6.0, shadow_strength=0.0)
    scene = plain_scene(pose, view=view)
    photons, truth = render_mean(scene)
    frame = Frame(
        image=photons, index=0, timestamp_s=0.0, pixel_size_um=0.7, fov_center_um=(123.4, -56.7)
    )
    expected_px = frame.sample_to_pixel(tip[0], tip[1])
    assert truth[0].x_px == pytest.approx(expected_px[0]) and truth[0].y_px == pytest.approx(
        expected_px[1]
    )
    assert frame.pixel_to_sample_um(truth[0].x_px, truth[0].y_px) == pytest.approx(
        (truth[0].x_um, truth[0].y_um)
    )
    assert (truth[0].x_um, truth[0].y_um) == pytest.approx(tip[:2])
    assert view.pixel_to_sample_um(17.0, 33.0) == pytest.approx(
        frame.pixel_to_sample_um(17.0, 33.0)
    )
    # The rendered speck sits where the label says.
    row, col = np.unravel_index(np.argmax(photons), photons.shape)
    assert abs(col - truth[0].x_px) <= 1.0 and abs(row - truth[0].y_px) <= 1.0


def test_shank_shadow_widens_and_softens_with_height() -> None:
    pose = PipettePose("p", (30.0, 0.0, 0.0), 25.0, 0.0, tip_speck=0.0)  # shank toward -x
    signal = _signal(pose, view=View((0.0, 0.0), 0.0, 160, 96, 1.0))

    def width(column: int) -> int:
        profile = signal[:, column]
        return int((profile < 0.5 * profile.min()).sum())

    tip_col = 79 + 30
    near, far = width(tip_col - 15), width(tip_col - 90)
    assert far > 2 * near

    def steepness(column: int) -> float:
        profile = signal[:, column]
        return float(np.abs(np.diff(profile)).max() / -profile.min())

    assert steepness(tip_col - 90) < 0.5 * steepness(tip_col - 15)  # far edges are softer


def test_zero_pipettes_and_flags_for_tips_outside_or_out_of_focus() -> None:
    image, truth = render(plain_scene(), np.random.default_rng(0))
    assert truth == [] and image.shape == (96, 96)
    poses = (
        PipettePose("in", (0.0, 0.0, 1.0), 30.0, 0.0),
        PipettePose("above", (10.0, 10.0, 25.0), 30.0, 90.0),
        PipettePose("out", (60.0, 0.0, 0.0), 30.0, 0.0),
        PipettePose("edge", (47.4, -47.4, 0.0), 30.0, 0.0),
    )
    _, truth = render(plain_scene(*poses), np.random.default_rng(0))
    flags = {t.pipette_id: (t.in_frame, t.in_focus) for t in truth}
    assert flags == {
        "in": (True, True),
        "above": (True, False),
        "out": (False, True),
        "edge": (True, True),
    }
    assert [t.pipette_id for t in truth] == ["in", "above", "out", "edge"]
    assert truth[1].z_offset_um == pytest.approx(25.0)


def test_clean_domain_is_flat_bright_with_a_dark_silhouette() -> None:
    pose = PipettePose("p", (0.0, 0.0, -30.0), 30.0, 0.0, polarity="bright")
    scene = plain_scene(pose)
    image, truth = render_clean(scene, np.random.default_rng(1))
    background = image[5:20, 70:90].astype(float)
    shank = image[int(truth[0].y_px), 20:40].astype(float)  # 10 to 30 µm up the shank
    assert background.mean() > 3 * shank.mean()
    assert background.std() / background.mean() < 0.12  # high signal: little shot noise
    noisy, _ = render(scene, np.random.default_rng(1))
    assert not np.array_equal(noisy, image)


@pytest.mark.parametrize(
    ("pose", "view"),
    [
        (PipettePose("p", (0, 0, 0), 0.5, 10.0), View((0, 0), 0.0, 40, 24, 0.1)),
        (PipettePose("p", (0, 0, 0), 89.0, 0.0, polarity=0.7), View((0, 0), 0.0, 8, 8, 20.0)),
        (PipettePose("p", (1e4, -1e4, 500), 30.0, 0.0), View((0, 0), -300.0, 32, 32, 1.0)),
        (
            PipettePose(
                "p", (0, 0, 0), 30.0, 0.0, velocity_um_s=(1e5, -1e5, 1e4), plume_strength=5
            ),
            View((5.0, 5.0), 0.0, 32, 48, 0.5),
        ),
        (
            PipettePose("p", (0, 0, 0), 45.0, 0.0, tip_diameter_um=20, taper_half_angle_deg=30),
            View((0, 0), 2.0, 64, 64, 2.0),
        ),
    ],
)
def test_extreme_but_valid_scenes_render_finite_frames(pose: PipettePose, view: View) -> None:
    photons, truth = render_mean(plain_scene(pose, view=view))
    assert photons.shape == view.shape and np.isfinite(photons).all() and photons.min() >= 0
    image, _ = render(plain_scene(pose, view=view), np.random.default_rng(0))
    assert image.dtype == np.uint16 and len(truth) == 1
