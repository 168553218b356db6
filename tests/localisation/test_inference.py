"""Inference API: input checks, resampling, tiling and merging map coordinates back.

The tiling tests use a hand-built network whose answer is known (it reports bright spots),
so any error in resampling, padding, tile offsets or merging shows up as a wrong position.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from patchpilot.localisation import LocaliserError, LocaliserOutput, get_preset
from patchpilot.localisation.heatmap import gaussian_heatmap
from patchpilot.localisation.inference import Localiser
from patchpilot.localisation.models.fast import decode_peaks
from patchpilot.localisation.output import LocaliserModel
from patchpilot.localisation.tiling import TileGrid, merge_detections, tile_starts


class SpotFinder(LocaliserModel):
    """Reports up to K local maxima of the (normalised) image above 3 as tips."""

    def __init__(self, fully_convolutional: bool) -> None:
        super().__init__()
        self.preset = dataclasses.replace(
            get_preset("fast"),
            name="spots",
            input_size_px=64,
            pixel_size_um=1.0,
            max_tips=8,
            fully_convolutional=fully_convolutional,
            tile_px=None if not fully_convolutional else 128,
        )

    def forward(self, images: torch.Tensor) -> LocaliserOutput:
        logit = (images - 3.0) * 4.0
        tips, presence = decode_peaks(logit, None, self.preset.max_tips, stride=1)
        return LocaliserOutput(tips, presence, heatmap_logit=logit, heatmap_stride=1)


def spots_frame(
    shape: tuple[int, int], tips_px: list[tuple[float, float]], sigma: float
) -> np.ndarray:
    rng = np.random.default_rng(0)
    image = 100.0 + 1000.0 * gaussian_heatmap(tips_px, shape, sigma)
    return (image + rng.normal(0, 1.0, shape)).astype(np.uint16)


@pytest.mark.parametrize("fully_convolutional", [False, True])
@pytest.mark.parametrize(
    ("shape", "pixel_size_um"),
    [((64, 64), 1.0), ((50, 70), 1.0), ((200, 300), 1.0), ((100, 90), 2.0), ((240, 260), 0.5)],
)
def test_positions_map_back_through_resampling_and_tiles(
    shape: tuple[int, int], pixel_size_um: float, fully_convolutional: bool
) -> None:
    rows, cols = shape
    # Spots near corners, edges and tile borders; wide enough to survive resampling.
    candidates = [
        (3.0, 4.0),
        (cols - 5.5, 6.2),
        (cols / 2 + 0.3, rows / 2 - 0.4),
        (7.5, rows - 4.0),
        (cols - 3.0, rows - 6.0),
    ]
    sigma = 2.5 / pixel_size_um
    frame = spots_frame(shape, candidates, sigma)
    localiser = Localiser(SpotFinder(fully_convolutional), confidence_threshold=0.5)
    found = localiser.localise(frame, pixel_size_um)
    got = np.array([(d.x_px, d.y_px) for d in found])
    assert len(found) == len(candidates), got
    for x, y in candidates:
        nearest = np.hypot(got[:, 0] - x, got[:, 1] - y).min()
        assert nearest < 0.6 / min(pixel_size_um, 1.0)
    for detection in found:
        assert detection.x_um == pytest.approx(detection.x_px * pixel_size_um)
        assert detection.y_um == pytest.approx(detection.y_px * pixel_size_um)
        assert 0.5 <= detection.confidence <= 1.0
    assert localiser.last_latency_ms > 0


def test_batch_matches_single_frames() -> None:
    localiser = Localiser(SpotFinder(True))
    a = spots_frame((64, 64), [(10.0, 12.0)], 2.5)
    b = spots_frame((96, 80), [(40.0, 70.0), (70.0, 20.0)], 2.5)
    batch = localiser.localise_batch([a, b], [1.0, 1.0])
    assert [len(r) for r in batch] == [1, 2]
    assert batch[1] == localiser.localise(b, 1.0)


def test_tile_starts_cover_with_overlap() -> None:
    assert tile_starts(50, 64, 16) == [0]
    starts = tile_starts(300, 64, 16)
    assert starts[0] == 0 and starts[-1] == 300 - 64
    assert all(b - a <= 64 - 16 for a, b in itertools.pairwise(starts))


def test_every_point_has_exactly_one_owner() -> None:
    grid = TileGrid.for_shape(300, 200, 64, 16)
    points = np.stack(np.meshgrid(np.arange(-0.5, 199.5, 0.7), np.arange(-0.5, 299.5, 0.9)), -1)
    points = points.reshape(-1, 2)
    owners = sum(grid.owned(i, points).astype(int) for i in range(len(grid.origins)))
    assert (owners == 1).all()


def test_merge_keeps_the_strongest() -> None:
    xy = np.array([[0.0, 0.0], [3.0, 0.0], [20.0, 0.0]])
    kept = merge_detections(xy, np.array([0.6, 0.9, 0.7]), radius_px=5.0)
    assert sorted(kept.tolist()) == [1, 2]


@pytest.mark.parametrize(
    ("frame", "pixel_size", "message"),
    [
        (np.zeros((4, 4, 3)), 1.0, "2D image"),
        (np.zeros((0, 10)), 1.0, "empty"),
        (np.full((8, 8), np.nan), 1.0, "NaN or infinite"),
        (np.array([[np.inf, 1.0]]), 1.0, "NaN or infinite"),
        (np.array([["a", "b"]]), 1.0, "integers or floats"),
        (np.zeros((8, 8), dtype=complex), 1.0, "integers or floats"),
        (np.zeros((8, 8)), 0.0, "pixel_size_um must be positive"),
        (np.zeros((8, 8)), -1.0, "pixel_size_um must be positive"),
        (np.zeros((8, 8)), float("nan"), "pixel_size_um must be positive"),
        (np.zeros((8, 8)), "big", "pixel_size_um must be a number"),
    ],
)
def test_bad_input_is_a_clear_error(frame: np.ndarray, pixel_size: float, message: str) -> None:
    localiser = Localiser(SpotFinder(True))
    with pytest.raises(LocaliserError, match=message):
        localiser.localise(frame, pixel_size)


def test_bad_settings() -> None:
    with pytest.raises(LocaliserError, match="num_threads"):
        Localiser(SpotFinder(True), num_threads=0)
    with pytest.raises(LocaliserError, match="confidence_threshold"):
        Localiser(SpotFinder(True), confidence_threshold=1.5)
    localiser = Localiser(SpotFinder(True))
    with pytest.raises(LocaliserError, match="2 frames but 1 pixel sizes"):
        localiser.localise_batch([np.zeros((8, 8)), np.zeros((8, 8))], [1.0])
    with pytest.raises(LocaliserError, match="no shipped weights named 'nope'"):
        Localiser.from_pretrained("nope")
