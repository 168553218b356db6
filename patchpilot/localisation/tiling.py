"""Cutting a (rescaled) frame into model-sized tiles with overlap, and merging detections.

Each point of the frame is *owned* by exactly one tile (the borders between owners lie in the
middle of each overlap), so a tip seen by two tiles is kept once; detections that still fall
within ``merge_radius_px`` of a stronger one (a tip right on an ownership border) are merged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["TileGrid", "merge_detections", "tile_starts"]


def tile_starts(length: int, tile: int, min_overlap: int) -> list[int]:
    """Start offsets covering ``length`` pixels with tiles of ``tile`` px.

    One tile (padded) when ``length <= tile``; otherwise evenly spaced tiles overlapping by at
    least ``min_overlap`` px, the last one flush with the end.
    """
    if length <= tile:
        return [0]
    step = tile - min_overlap
    n = math.ceil((length - tile) / step) + 1
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of one frame sit and which region each owns (pixels)."""

    rows: int
    cols: int
    tile: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]
    shape: tuple[int, int]
    """(rows, columns) of every cut tile, padding included."""

    @classmethod
    def for_shape(
        cls, rows: int, cols: int, tile: int, min_overlap: int, multiple: int | None = None
    ) -> TileGrid:
        """Tiles of ``tile`` px; with ``multiple`` (fully convolutional networks) a frame
        smaller than a tile is padded only up to the next multiple of it, not to a tile."""

        def padded(length: int) -> int:
            if multiple is None or length >= tile:
                return tile
            return -(-length // multiple) * multiple

        return cls(
            rows,
            cols,
            tile,
            tuple(tile_starts(rows, tile, min_overlap)),
            tuple(tile_starts(cols, tile, min_overlap)),
            (padded(rows), padded(cols)),
        )

    @property
    def origins(self) -> list[tuple[int, int]]:
        """(x0, y0) of every tile, row-major."""
        return [(x, y) for y in self.ys for x in self.xs]

    def cut(self, image: NDArray[np.float32], pad_value: float = 0.0) -> NDArray[np.float32]:
        """(T, *shape) stack of tiles; beyond the frame the value is ``pad_value``."""
        out = np.full((len(self.ys) * len(self.xs), *self.shape), pad_value, np.float32)
        for i, (x0, y0) in enumerate(self.origins):
            window = image[y0 : y0 + self.tile, x0 : x0 + self.tile]
            out[i, : window.shape[0], : window.shape[1]] = window
        return out

    def owned(self, index: int, xy_px: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Which of the (n, 2) frame coordinates tile ``index`` owns (and lie in the frame)."""
        row, col = divmod(index, len(self.xs))
        x_lo, x_hi = _owned_range(self.xs, col, self.tile, self.cols)
        y_lo, y_hi = _owned_range(self.ys, row, self.tile, self.rows)
        x, y = xy_px[:, 0], xy_px[:, 1]
        inside: NDArray[np.bool_] = (x >= x_lo) & (x < x_hi) & (y >= y_lo) & (y < y_hi)
        return inside


def _owned_range(starts: tuple[int, ...], i: int, tile: int, length: int) -> tuple[float, float]:
    low = -0.5 if i == 0 else (starts[i - 1] + tile + starts[i]) / 2.0 - 0.5
    high = length - 0.5 if i == len(starts) - 1 else (starts[i] + tile + starts[i + 1]) / 2.0 - 0.5
    return low, high


def merge_detections(
    xy_px: NDArray[np.float64], score: NDArray[np.float64], radius_px: float
) -> NDArray[np.intp]:
    """Indices of detections kept after greedy suppression, strongest first.

    A detection within ``radius_px`` of a stronger kept one is dropped.
    """
    order = np.argsort(-score, kind="stable")
    kept: list[int] = []
    for i in order:
        if all(np.hypot(*(xy_px[i] - xy_px[j])) > radius_px for j in kept):
            kept.append(int(i))
    return np.asarray(kept, dtype=np.intp)
