"""Shot noise and the detector chain."""

from __future__ import annotations

import numpy as np
import pytest

from patchpilot.scene import Acquisition, render, render_mean
from tests.scene.conftest import plain_scene


@pytest.mark.parametrize("photons", [0.4, 3.0, 20.0, 31.9, 80.0])
def test_flat_field_variance_equals_mean_at_unit_gain(
    photons: float, unit_gain: Acquisition
) -> None:
    acquisition = Acquisition(**{**unit_gain.__dict__, "photon_rate_per_us": photons / 2.0})
    scene = plain_scene(acquisition=acquisition)
    expected, _ = render_mean(scene)
    assert np.allclose(expected, photons, rtol=1e-4)
    rng = np.random.default_rng(7)
    frames = np.stack([render(scene, rng)[0] for _ in range(6)]).astype(np.float64)
    mean, var = frames.mean(), frames.var()
    assert mean == pytest.approx(photons, rel=0.01, abs=0.01)
    assert var == pytest.approx(mean, rel=0.04)
    assert np.all(frames == np.round(frames))  # whole photons at unit gain


def test_excess_noise_gain_offset_and_saturation() -> None:
    base = {
        "photon_rate_per_us": 10.0,
        "detector_gain_adu": 5.0,
        "read_noise_adu": 0.0,
        "bit_depth": 16,
    }
    plain = Acquisition(**base, excess_noise_factor=1.0, offset_adu=100.0)
    noisy = Acquisition(**base, excess_noise_factor=1.5, offset_adu=100.0)
    rng = np.random.default_rng(3)
    a = render(plain_scene(acquisition=plain), rng)[0].astype(float)
    b = render(plain_scene(acquisition=noisy), rng)[0].astype(float)
    assert a.mean() == pytest.approx(100 + 5 * 20, rel=0.01)
    assert a.var() == pytest.approx(25 * 20, rel=0.06)
    assert b.var() == pytest.approx(1.5 * 25 * 20, rel=0.06)
    saturating = Acquisition(photon_rate_per_us=500.0, detector_gain_adu=10.0, bit_depth=12)
    image = render(plain_scene(acquisition=saturating), rng)[0]
    assert image.max() == 4095 and (image == 4095).mean() > 0.99
