"""The public surface others code against: names, determinism, truth labels."""

from __future__ import annotations

import numpy as np

from patchpilot.scene import (
    Acquisition,
    Optics,
    PipettePose,
    Scene,
    SceneSampler,
    TipTruth,
    Tissue,
    View,
    random_scene,
    render,
)


def test_public_names_import() -> None:
    from patchpilot.scene import SyntheticTipDataset

    assert all(
        callable(x)
        for x in (PipettePose, Tissue, View, Optics, Acquisition, Scene, TipTruth, SceneSampler)
    )
    assert SyntheticTipDataset.__name__ == "SyntheticTipDataset"


def test_same_seed_same_image_different_seed_different() -> None:
    scene = random_scene(np.random.default_rng(5), n_pipettes=2, size_px=64)
    first, truth_a = render(scene, np.random.default_rng(11))
    second, truth_b = render(scene, np.random.default_rng(11))
    other, _ = render(scene, np.random.default_rng(12))
    assert first.dtype == np.uint16 and first.shape == (64, 64)
    assert np.array_equal(first, second)
    assert truth_a == truth_b
    assert not np.array_equal(first, other)
    rebuilt = random_scene(np.random.default_rng(5), n_pipettes=2, size_px=64)
    again, _ = render(rebuilt, np.random.default_rng(11))
    assert np.array_equal(first, again)
