"""The shipped default model on simulated frames: other pixel sizes and tiled large frames
map coordinates back to the same tips."""

from __future__ import annotations

import numpy as np
import pytest

from patchpilot.localisation import Localiser
from patchpilot.localisation.inference import WEIGHTS_DIR
from patchpilot.scene import SceneSampler, render

pytestmark = pytest.mark.skipif(
    not (WEIGHTS_DIR / "fast.pt").is_file(), reason="no shipped weights"
)

CLEAR = 0.6
"""Tips found at least this confidently are the ones every transformed frame must show (the
transforms change the pixels slightly, so tips near the threshold may come and go)."""


@pytest.fixture(scope="module")
def localiser() -> Localiser:
    return Localiser.from_pretrained()


@pytest.fixture(scope="module")
def frame(localiser: Localiser) -> tuple[np.ndarray, np.ndarray]:
    """A test-split frame at the model's pixel size in which the model clearly finds 2+ tips."""
    sampler = SceneSampler.for_split("test", pixel_size_um=1.0, n_pipettes=3, size_px=256)
    for index in range(60):
        scene, noise = sampler.scene(index)
        image, _ = render(scene, noise)
        found = [d for d in localiser.localise(image, 1.0) if d.confidence >= CLEAR]
        if len(found) >= 2:
            return image, np.array([(d.x_px, d.y_px) for d in found])
    raise AssertionError("no test frame with two clear detections")


def _nearest(points: np.ndarray, xy: np.ndarray) -> float:
    return float(np.hypot(*(points - xy).T).min()) if len(points) else np.inf


def test_default_is_the_shipped_fast_model(localiser: Localiser) -> None:
    assert localiser.preset.name == "fast"
    assert localiser.pixel_size_um == 1.0
    assert localiser.backend == "onnx"
    # The threshold chosen on validation travels with the shipped weights.
    assert localiser.confidence_threshold != 0.5


def test_finer_pixels_map_back(localiser: Localiser, frame: tuple[np.ndarray, np.ndarray]) -> None:
    image, tips = frame
    # Each pixel split in 2 x 2: same field of view at 0.5 µm; a tip at x sits at 2x + 0.5.
    fine = np.kron(image, np.ones((2, 2), dtype=image.dtype))
    found = localiser.localise(fine, 0.5)
    got = np.array([(d.x_px, d.y_px) for d in found]).reshape(-1, 2)
    for x, y in tips:
        # Within 1.5 µm: resampling moves the network's answer by about a micrometre; a
        # scale error would put it tens of pixels away.
        assert _nearest(got, np.array([2 * x + 0.5, 2 * y + 0.5])) < 3.0
    for detection in found:
        assert detection.x_um == pytest.approx(detection.x_px * 0.5)


def test_large_frame_is_tiled_and_merged(
    localiser: Localiser, frame: tuple[np.ndarray, np.ndarray]
) -> None:
    """A 1280 px frame is cut into four 1024 px tiles (starting at 0 and 256 px): each scene
    copy, pasted where one tile alone reports (the merge splits overlaps in the middle),
    comes back exactly as that tile run alone finds it, shifted to the big frame, once."""
    image, _ = frame
    rng = np.random.default_rng(0)
    big = rng.poisson(float(np.median(image)), (1280, 1280)).astype(image.dtype)
    big[100:356, 100:356] = image  # the first tile's own part (x, y < 640)
    big[900:1156, 900:1156] = image  # the last tile's own part (x, y > 640)
    found = localiser.localise(big, 1.0)
    got = np.array([(d.x_px, d.y_px) for d in found]).reshape(-1, 2)
    for start in (0, 256):
        alone = localiser.localise(big[start : start + 1024, start : start + 1024], 1.0)
        low = 100 if start == 0 else 900  # where this tile's copy of the scene lies
        own = [
            (d.x_px + start, d.y_px + start)
            for d in alone
            if low <= d.x_px + start < low + 256 and low <= d.y_px + start < low + 256
        ]
        assert own, "the tile alone finds tips in its copy of the scene"
        for xy in own:
            assert _nearest(got, np.array(xy)) < 0.5  # batched tiles: float rounding only
    if len(got) > 1:
        gaps = np.hypot(*(got[:, None] - got[None]).transpose(2, 0, 1)) + np.eye(len(got)) * 1e9
        assert gaps.min() > localiser.merge_radius_px  # nothing reported twice
