"""Tip depth from a focus sweep on rendered spots."""

from __future__ import annotations

import math

import numpy as np
import pytest

from patchpilot.control.focus import FocusError, fit_focus_peak, sweep_positions, tip_sharpness


def spot(
    defocus_um: float, rng: np.random.Generator, x: float = 40.3, y: float = 37.6
) -> np.ndarray:
    sigma = math.hypot(1.2, 0.45 * defocus_um)
    ys, xs = np.mgrid[0:80, 0:80]
    image = 400.0 * (1.2 / sigma) ** 2 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    return image + 50.0 + rng.normal(0.0, 2.0, image.shape)


@pytest.mark.parametrize("true_z", [-3.7, 0.0, 2.2, 5.9])
def test_sweep_finds_the_depth(true_z: float) -> None:
    rng = np.random.default_rng(int(true_z * 10) + 50)
    focuses = sweep_positions(1.0, 8.0, 1.0)
    sharpness = [tip_sharpness(spot(true_z - f, rng), 40.3, 37.6) for f in focuses]
    assert fit_focus_peak(focuses, sharpness) == pytest.approx(true_z, abs=0.35)


def test_failures_say_why() -> None:
    rng = np.random.default_rng(0)
    focuses = sweep_positions(0.0, 6.0, 1.0)
    beyond = [tip_sharpness(spot(9.0 - f, rng), 40, 40) for f in focuses]
    with pytest.raises(FocusError, match="outside it"):
        fit_focus_peak(focuses, beyond)
    far = [tip_sharpness(spot(40.0 - f, rng), 40, 40) for f in focuses]
    with pytest.raises(FocusError):  # never a made-up depth from noise
        fit_focus_peak(focuses, far)
    with pytest.raises(FocusError, match="flat"):
        fit_focus_peak(focuses, [1.0] * len(focuses))
    with pytest.raises(FocusError, match="at least 5"):
        fit_focus_peak([0.0, 1.0], [1.0, 2.0])
    with pytest.raises(FocusError, match="2-D"):
        tip_sharpness(np.zeros((4, 4, 3)), 1, 1)
    with pytest.raises(FocusError, match="edge"):
        tip_sharpness(np.zeros((40, 40)), 0.4, 20)
    with pytest.raises(FocusError, match="bad sweep"):
        sweep_positions(0.0, 0.5, 1.0)
    # Near the border the crop shrinks rather than failing.
    assert tip_sharpness(spot(0.0, rng, x=2.0, y=40.0), 2.0, 40.0) > 0
