"""Bad parameters give one clear error naming the field and the value."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from patchpilot.scene import (
    Acquisition,
    Optics,
    PipettePose,
    Scene,
    SceneError,
    SceneSampler,
    Tissue,
    TissueMotion,
    View,
    random_scene,
    render,
)


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: View(pixel_size_um=-1.0), ["pixel_size_um", "-1.0"]),
        (lambda: View(pixel_size_um=0.0), ["pixel_size_um"]),
        (lambda: View(width_px=3), ["width_px", "3"]),
        (lambda: View(fov_center_um=(math.nan, 0.0)), ["fov_center_um", "finite"]),
        (lambda: PipettePose("p", (0, 0, 0), 95.0, 0.0), ["pitch_deg", "95"]),
        (lambda: PipettePose("p", (0, 0, 0), 0.0, 0.0), ["pitch_deg"]),
        (lambda: PipettePose("p", (0, 0, 0), 90.0, 0.0), ["pitch_deg"]),
        (lambda: PipettePose("p", (0, math.inf, 0), 30.0, 0.0), ["tip_um", "finite"]),
        (lambda: PipettePose("p", (0, 0), 30.0, 0.0), ["tip_um", "3 numbers"]),
        (lambda: PipettePose("p", (0, 0, 0), 30.0, 0.0, polarity="purple"), ["polarity", "purple"]),
        (lambda: PipettePose("p", (0, 0, 0), 30.0, 0.0, polarity=1.5), ["polarity"]),
        (lambda: PipettePose("p", (0, 0, 0), 30.0, 0.0, tip_diameter_um=-1), ["tip_diameter_um"]),
        (lambda: PipettePose("", (0, 0, 0), 30.0, 0.0), ["pipette_id"]),
        (lambda: Optics(psf_sigma_z_um=0.0), ["psf_sigma_z_um"]),
        (lambda: Acquisition(bit_depth=13), ["bit_depth", "13"]),
        (lambda: Acquisition(pixel_dwell_us=-2.0), ["pixel_dwell_us"]),
        (lambda: TissueMotion(heart_rate_hz=-1.0), ["heart_rate_hz"]),
        (lambda: Tissue(medium_brightness=-1.0), ["medium_brightness"]),
        (lambda: random_scene(np.random.default_rng(0), pixel_size_um=-1.0), ["pixel_size_um"]),
        (lambda: random_scene(np.random.default_rng(0), n_pipettes=(3, 1)), ["n_pipettes"]),
        (lambda: SceneSampler("training"), ["training"]),
    ],
)
def test_bad_parameters_name_the_field(build: object, words: list[str]) -> None:
    with pytest.raises(SceneError) as caught:
        build()  # type: ignore[operator]
    for word in words:
        assert word in str(caught.value)


def test_scene_rejects_duplicate_ids_and_wrong_types() -> None:
    pose = PipettePose("p", (0, 0, 0), 30.0, 0.0)
    with pytest.raises(SceneError, match="share id"):
        Scene(Tissue.uniform(), (pose, pose))
    with pytest.raises(SceneError, match="tissue"):
        Scene("tissue", (pose,))  # type: ignore[arg-type]
    with pytest.raises(SceneError, match="Generator"):
        render(Scene(Tissue.uniform(), (pose,)), 42)  # type: ignore[arg-type]


def test_values_are_frozen_normalised_and_picklable() -> None:
    pose = PipettePose("p", [1, 2, 3], 30, 0, velocity_um_s=[0, 0, 1])  # type: ignore[arg-type]
    assert pose.tip_um == (1.0, 2.0, 3.0) and pose.velocity_um_s == (0.0, 0.0, 1.0)
    with pytest.raises(AttributeError):
        pose.pitch_deg = 40.0  # type: ignore[misc]
    scene = random_scene(np.random.default_rng(2), size_px=32)
    again = pickle.loads(pickle.dumps(scene))
    assert again.pipettes == scene.pipettes
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    assert np.array_equal(render(scene, rng_a)[0], render(again, rng_b)[0])
