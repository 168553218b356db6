"""Optimal one-to-one matching of predicted and true tips (Hungarian / Munkres on distance).

``scipy.optimize.linear_sum_assignment`` solves the rectangular assignment exactly, so any
number of tips works (the paper's script enumerated the 4! orderings of four slots).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

__all__ = ["Match", "match_points"]


@dataclass(frozen=True)
class Match:
    """The result of matching M predictions with N truths.

    ``pred_index[i]`` is matched with ``true_index[i]`` at Euclidean ``distance[i]``;
    min(M, N) pairs (fewer when a gate is given). Units are those of the inputs.
    """

    pred_index: NDArray[np.intp]
    true_index: NDArray[np.intp]
    distance: NDArray[np.float64]
    n_pred: int
    n_true: int

    @property
    def unmatched_pred(self) -> NDArray[np.intp]:
        """Indices of predictions left without a partner (spurious detections)."""
        return np.setdiff1d(np.arange(self.n_pred), self.pred_index).astype(np.intp)

    @property
    def unmatched_true(self) -> NDArray[np.intp]:
        """Indices of truths left without a partner (missed tips)."""
        return np.setdiff1d(np.arange(self.n_true), self.true_index).astype(np.intp)


def match_points(
    pred: NDArray[np.floating] | list[tuple[float, float]],
    true: NDArray[np.floating] | list[tuple[float, float]],
    gate: float | None = None,
) -> Match:
    """Match predicted to true points minimising the total Euclidean distance.

    Parameters
    ----------
    pred, true
        (M, 2) and (N, 2) point arrays (either may be empty), same unit.
    gate
        When given, pairs farther apart than ``gate`` are dropped after the assignment
        (they count as one miss and one spurious detection).

    Raises
    ------
    ValueError
        If an input is not (n, 2) or holds NaN/inf.
    """
    p = _as_points(pred, "pred")
    t = _as_points(true, "true")
    if len(p) == 0 or len(t) == 0:
        empty = np.zeros(0, dtype=np.intp)
        return Match(empty, empty, np.zeros(0), len(p), len(t))
    cost = np.linalg.norm(p[:, None, :] - t[None, :, :], axis=-1)
    rows, cols = linear_sum_assignment(cost)
    dist = cost[rows, cols]
    if gate is not None:
        keep = dist <= gate
        rows, cols, dist = rows[keep], cols[keep], dist[keep]
    return Match(rows.astype(np.intp), cols.astype(np.intp), dist, len(p), len(t))


def _as_points(
    points: NDArray[np.floating] | list[tuple[float, float]], name: str
) -> NDArray[np.float64]:
    array = np.asarray(points, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 2))
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{name} must be an (n, 2) array of points, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite coordinates")
    return array
