"""The two-photon multi-pipette scene renderer (the simulated camera and synthetic data).

Everything is in the sample frame in µm (``patchpilot.types``); see :func:`render` for how a
frame is formed and :func:`random_scene` for the training distribution.

>>> import numpy as np
>>> from patchpilot.scene import random_scene, render
>>> rng = np.random.default_rng(0)
>>> image, truth = render(random_scene(rng), rng)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from patchpilot.scene.coco import LabelledImage, load_coco_keypoints
from patchpilot.scene.model import (
    POLARITY_MIX,
    Acquisition,
    Optics,
    PipettePose,
    Scene,
    SceneError,
    TipTruth,
    TissueMotion,
    View,
)
from patchpilot.scene.rendering import (
    CLEAN_BACKGROUND_PHOTONS,
    render,
    render_clean,
    render_mean,
    scan_times,
    tip_truth,
)
from patchpilot.scene.sampler import (
    PIXEL_SIZE_RANGE_UM,
    SPLIT_SEEDS,
    SceneSampler,
    random_scene,
    scene_for_seed,
    scene_sequence,
    split_of_seed,
)
from patchpilot.scene.tissue import Nuclei, Tissue, Vessels

if TYPE_CHECKING:
    from patchpilot.scene.dataset import SyntheticTipDataset, normalise_image

GENERATOR_VERSION = "1"
"""Bumped whenever the same seed would render a different frame (for caches of rendered sets)."""

__all__ = [
    "CLEAN_BACKGROUND_PHOTONS",
    "GENERATOR_VERSION",
    "PIXEL_SIZE_RANGE_UM",
    "POLARITY_MIX",
    "SPLIT_SEEDS",
    "Acquisition",
    "LabelledImage",
    "Nuclei",
    "Optics",
    "PipettePose",
    "Scene",
    "SceneError",
    "SceneSampler",
    "SyntheticTipDataset",
    "TipTruth",
    "Tissue",
    "TissueMotion",
    "Vessels",
    "View",
    "load_coco_keypoints",
    "normalise_image",
    "random_scene",
    "render",
    "render_clean",
    "render_mean",
    "scan_times",
    "scene_for_seed",
    "scene_sequence",
    "split_of_seed",
    "tip_truth",
]


def __getattr__(name: str) -> Any:
    # The Dataset needs torch; import it only when asked so the CLI and camera stay light.
    if name in ("SyntheticTipDataset", "normalise_image"):
        from patchpilot.scene import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'patchpilot.scene' has no attribute {name!r}")
