"""A classical (no learning) tip finder: pipette masks, skeletons, and narrowing ends.

A pipette in a two-photon frame is a wedge, dark (its shadow and glass) or bright (the dye in
its lumen), that narrows to the tip and usually enters from the frame edge. Per polarity:

1. Contrast: the frame smoothed at ``smooth_px`` minus a background smoothed at
   ``background_px``, in units of its own robust (MAD) spread.
2. Mask: hysteresis threshold of the contrast (``low``/``high``), small pieces removed.
3. Skeleton (``skimage.morphology.skeletonize``) and half-widths from the Euclidean distance
   transform of the mask; every skeleton end point is a candidate.
4. Segment fit: the skeleton pixels within ``segment_px`` of the end give the wedge axis
   (principal direction) and the width profile along it; the slope of width against distance
   from the end is the *narrowing*. Ends that do not narrow (vessel ends, the cut end where
   the shank leaves the frame, blobs) are dropped.
5. Tip: the end point pushed outwards along the axis by its half-width (the skeleton stops
   one radius short of the apex). Score = narrowing x contrast; the best ``max_tips`` ends
   farther apart than ``min_separation_px`` are kept.

It runs as a parameter-free :class:`LocaliserModel` on the normalised model-resolution image,
so it goes through exactly the same :class:`~patchpilot.localisation.inference.Localiser`
and evaluation as the networks. No gradients, no heatmap, not exportable to ONNX.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from numpy.typing import NDArray
from scipy import ndimage
from skimage import filters as _sk_filters
from skimage import morphology as _sk_morphology

from patchpilot.localisation.losses import LossSpec
from patchpilot.localisation.output import LocaliserModel, LocaliserOutput

if TYPE_CHECKING:
    from patchpilot.localisation.presets import LocaliserPreset

__all__ = ["Candidate", "ClassicalParams", "ClassicalTipFinder", "find_tips", "register"]

F32 = NDArray[np.float32]
# scikit-image's functions carry no type annotations; call them through Any.
_filters: Any = _sk_filters
_morphology: Any = _sk_morphology


@dataclass(frozen=True)
class ClassicalParams:
    """Settings of the classical finder (pixels at the model's pixel size)."""

    smooth_px: float = 1.5
    background_px: float = 20.0
    low: float = 2.0
    high: float = 5.0
    min_area_px: int = 60
    border_px: int = 3
    """Skeleton ends this close to the frame edge are where a shank leaves the frame."""
    segment_px: float = 40.0
    min_segment_px: int = 6
    min_narrowing: float = 0.04
    min_separation_px: float = 8.0
    score_threshold: float = 0.01
    """Score at which the presence probability is 0.5. On 80 validation frames (never the
    test split) every surviving candidate was worth keeping (stronger scores were not more
    often tips), so this sits below the smallest possible score: the best ``max_tips``
    ends are reported."""

    @classmethod
    def from_extra(cls, extra: tuple[tuple[str, Any], ...]) -> ClassicalParams:
        """Settings from a preset's ``extra`` pairs (unknown keys are ignored)."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in extra if k in known})


@dataclass(frozen=True)
class Candidate:
    """One narrowing skeleton end: tip (x_px, y_px), narrowing (px/px), contrast, score."""

    x_px: float
    y_px: float
    narrowing: float
    contrast: float
    score: float


def _valid_extent(image: F32) -> tuple[int, int]:
    """Rows and columns before the zero padding the tiler adds at the bottom/right."""
    rows = np.flatnonzero(np.any(image != 0.0, axis=1))
    cols = np.flatnonzero(np.any(image != 0.0, axis=0))
    if len(rows) == 0 or len(cols) == 0:
        return 0, 0
    return int(rows[-1]) + 1, int(cols[-1]) + 1


def _contrast(image: F32, params: ClassicalParams) -> F32:
    smooth = ndimage.gaussian_filter(image, params.smooth_px, mode="reflect")
    background = ndimage.gaussian_filter(image, params.background_px, mode="reflect")
    contrast = smooth - background
    spread = 1.4826 * float(np.median(np.abs(contrast - np.median(contrast))))
    out: F32 = (contrast / max(spread, 1e-6)).astype(np.float32)
    return out


def _end_points(skeleton: NDArray[np.bool_]) -> NDArray[np.intp]:
    """(n, 2) (row, col) of skeleton pixels with exactly one 8-neighbour."""
    neighbours = ndimage.convolve(
        skeleton.astype(np.uint8), np.ones((3, 3), np.uint8), mode="constant"
    )
    rows, cols = np.nonzero(skeleton & (neighbours == 2))
    return np.stack([rows, cols], axis=1)


def _candidates_one_polarity(contrast: F32, params: ClassicalParams) -> list[Candidate]:
    mask = _filters.apply_hysteresis_threshold(contrast, params.low, params.high)
    mask = _morphology.remove_small_objects(mask, max_size=params.min_area_px)
    if not mask.any():
        return []
    half_width = ndimage.distance_transform_edt(mask).astype(np.float32)
    skeleton = _morphology.skeletonize(mask)
    labels, _ = ndimage.label(skeleton, structure=np.ones((3, 3)))
    sk_rows, sk_cols = np.nonzero(skeleton)
    sk_label = labels[sk_rows, sk_cols]
    found = []
    rows, cols = mask.shape
    edge = params.border_px
    for row, col in _end_points(skeleton):
        if min(row, col) < edge or row >= rows - edge or col >= cols - edge:
            continue
        same = sk_label == labels[row, col]
        d_row = sk_rows[same] - row
        d_col = sk_cols[same] - col
        near = np.hypot(d_row, d_col) <= params.segment_px
        if int(near.sum()) < params.min_segment_px:
            continue
        offsets = np.stack([d_col[near], d_row[near]], axis=1).astype(np.float64)  # (x, y)
        axis = _principal_axis(offsets)
        along = offsets @ axis
        if along.mean() < 0:  # the axis points from the end into the pipette
            axis, along = -axis, -along
        widths = half_width[sk_rows[same][near], sk_cols[same][near]].astype(np.float64)
        narrowing = _slope(along, widths)
        if narrowing < params.min_narrowing:
            continue
        radius = float(half_width[row, col])
        x = col - axis[0] * radius
        y = row - axis[1] * radius
        strength = float(np.abs(contrast[sk_rows[same][near], sk_cols[same][near]]).mean())
        score = narrowing * strength / 10.0
        found.append(Candidate(float(x), float(y), narrowing, strength, score))
    return found


def _principal_axis(points: NDArray[np.float64]) -> NDArray[np.float64]:
    centred = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axis: NDArray[np.float64] = vt[0]
    return axis


def _slope(x: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    spread = float(((x - x.mean()) ** 2).sum())
    if spread < 1e-9:
        return 0.0
    return float(((x - x.mean()) * (y - y.mean())).sum() / spread)


def find_tips(image: F32, params: ClassicalParams | None = None) -> list[Candidate]:
    """Tip candidates in one normalised image, strongest first, non-maximum suppressed.

    Parameters
    ----------
    image
        2D float image at the model's pixel size (zero padding at the bottom/right is
        ignored).
    params
        Settings (default :class:`ClassicalParams`).

    Raises
    ------
    ValueError
        If ``image`` is not 2D.
    """
    params = params or ClassicalParams()
    if image.ndim != 2:
        raise ValueError(f"image must be 2D, got shape {image.shape}")
    rows, cols = _valid_extent(image)
    if rows < 8 or cols < 8:
        return []
    valid = np.ascontiguousarray(image[:rows, :cols], dtype=np.float32)
    contrast = _contrast(valid, params)
    found = _candidates_one_polarity(-contrast, params) + _candidates_one_polarity(contrast, params)
    found.sort(key=lambda c: -c.score)
    kept: list[Candidate] = []
    for cand in found:
        inside = -0.5 <= cand.x_px <= cols - 0.5 and -0.5 <= cand.y_px <= rows - 0.5
        far = all(
            np.hypot(cand.x_px - k.x_px, cand.y_px - k.y_px) > params.min_separation_px
            for k in kept
        )
        if inside and far:
            kept.append(cand)
    return kept


class ClassicalTipFinder(LocaliserModel):
    """:func:`find_tips` as a localiser network (settings from ``preset.extra``)."""

    def __init__(self, preset: LocaliserPreset) -> None:
        super().__init__()
        self.preset = preset
        self.params = ClassicalParams.from_extra(preset.extra)

    def forward(self, images: torch.Tensor) -> LocaliserOutput:
        batch = images.shape[0]
        k = self.preset.max_tips
        tips = np.zeros((batch, k, 2), dtype=np.float32)
        presence = np.full((batch, k), -30.0, dtype=np.float32)
        arrays = images.detach().float().cpu().numpy()
        for b in range(batch):
            for slot, cand in enumerate(find_tips(arrays[b, 0], self.params)[:k]):
                tips[b, slot] = (cand.x_px, cand.y_px)
                # Presence probability 0.5 at the score threshold, rising with the score.
                ratio = max(cand.score, 1e-6) / self.params.score_threshold
                presence[b, slot] = 4.0 * float(np.log(ratio))
        return LocaliserOutput(torch.from_numpy(tips), torch.from_numpy(presence))


def register() -> LocaliserPreset:
    """Register the ``classical`` architecture and preset (idempotent); return the preset."""
    from patchpilot.localisation.presets import (
        LocaliserPreset,
        StageSpec,
        get_preset,
        list_localisers,
        register_architecture,
        register_localiser,
    )

    register_architecture("classical", ClassicalTipFinder)
    if "classical" in list_localisers():
        return get_preset("classical")
    return register_localiser(
        LocaliserPreset(
            name="classical",
            architecture="classical",
            backbone="none",
            input_size_px=512,
            pixel_size_um=1.0,
            max_tips=4,
            sigma_px=5.0,
            loss=LossSpec(),
            stages=(StageSpec("none", ("all",), 0.0, 1.0),),
            fully_convolutional=True,
            tile_px=1024,
            description="Classical: contrast masks, skeleton ends that narrow (no training).",
        )
    )
