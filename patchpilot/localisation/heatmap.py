"""Ground-truth heatmaps: one Gaussian bump per tip, ``exp(-d^2 / sigma^2)`` as in the paper.

Coordinates follow ``patchpilot.types``: x along columns, y along rows, origin at the centre of
the top-left pixel. A heatmap with ``stride`` s samples the input at the centres of s x s
blocks, i.e. cell (row v, column u) sits at input pixel ``(u * s + (s - 1) / 2, v * s + ...)``.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray

__all__ = ["cell_centres_px", "gaussian_heatmap", "gaussian_heatmap_torch"]


def cell_centres_px(n_cells: int, stride: int) -> NDArray[np.float64]:
    """Input-pixel coordinate of each cell centre along one axis of a stride-``stride`` map."""
    return np.arange(n_cells, dtype=np.float64) * stride + (stride - 1) / 2.0


def gaussian_heatmap(
    tips_px: NDArray[np.floating] | list[tuple[float, float]],
    shape: tuple[int, int],
    sigma_px: float,
    stride: int = 1,
) -> NDArray[np.float32]:
    """Heatmap with a peak of 1 at each tip, the maximum where bumps overlap.

    Parameters
    ----------
    tips_px
        (N, 2) array of (x_px, y_px) in input pixels; N may be 0.
    shape
        (rows, columns) of the heatmap (input shape divided by ``stride``).
    sigma_px
        Width of each bump in input pixels (paper: 10 px); the value at distance d is
        ``exp(-d^2 / sigma_px^2)``.
    stride
        Input pixels per heatmap cell.

    Raises
    ------
    ValueError
        If ``sigma_px`` is not positive or ``tips_px`` is not (N, 2).
    """
    if not sigma_px > 0:
        raise ValueError(f"sigma_px must be positive, got {sigma_px}")
    tips = np.asarray(tips_px, dtype=np.float64).reshape(-1, 2) if len(tips_px) else None
    out = np.zeros(shape, dtype=np.float32)
    if tips is None:
        return out
    ys = cell_centres_px(shape[0], stride)[:, None]
    xs = cell_centres_px(shape[1], stride)[None, :]
    for x, y in tips:
        bump = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / sigma_px**2)
        np.maximum(out, bump.astype(np.float32), out=out)
    return out


def gaussian_heatmap_torch(
    tips_px: torch.Tensor,
    valid: torch.Tensor,
    shape: tuple[int, int],
    sigma_px: float,
    stride: int = 1,
) -> torch.Tensor:
    """Batched :func:`gaussian_heatmap` on tensors (for targets built on the fly).

    Parameters
    ----------
    tips_px
        (B, K, 2) tip coordinates (x_px, y_px) in input pixels, padded.
    valid
        (B, K) bool, True where the slot holds a tip.
    shape
        (rows, columns) of the output.
    sigma_px
        Bump width in input pixels.
    stride
        Input pixels per heatmap cell.

    Returns
    -------
    torch.Tensor
        (B, 1, rows, columns) float heatmap in [0, 1].
    """
    rows, cols = shape
    device = tips_px.device
    ys = torch.arange(rows, device=device, dtype=torch.float32) * stride + (stride - 1) / 2.0
    xs = torch.arange(cols, device=device, dtype=torch.float32) * stride + (stride - 1) / 2.0
    dx2 = (xs.view(1, 1, 1, cols) - tips_px[..., 0].float().view(*tips_px.shape[:2], 1, 1)) ** 2
    dy2 = (ys.view(1, 1, rows, 1) - tips_px[..., 1].float().view(*tips_px.shape[:2], 1, 1)) ** 2
    bumps = torch.exp(-(dx2 + dy2) / sigma_px**2) * valid.float().view(*valid.shape, 1, 1)
    if bumps.shape[1] == 0:
        return torch.zeros(tips_px.shape[0], 1, rows, cols, device=device)
    return bumps.amax(dim=1, keepdim=True)
