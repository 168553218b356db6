"""Tip depth from a focus sweep, read from where the shank crosses the focal plane.

A tip's depth cannot be read well from how sharp the image around it looks: the two-photon
axial PSF is a few micrometres long, so sharpness changes slowly with focus, and the peak of
any sharpness measure lies a micrometre or more above or below the tip depending on its
scale (and in textured tissue there is often no peak at all). The geometry is exact instead.
With the focal plane ``dz`` above the tip, the shank crosses focus ``dz / tan(pitch)`` back
along the pipette (projected on the image): the glass there excludes the dye over the whole
axial PSF, a sharp dark band, with the softer shadow of the glass above focus behind it and
bright medium in front. With the focal plane below the tip there is no crossing at all.

So a sweep from a little below the tip to ~10 µm above it, with the intensity sampled along
the projected pipette axis through the tip's x, y (one profile per focus), shows a dark
valley that moves back along the shank at ``cot(pitch)`` per µm of focus, starting at the
tip. ``depth_from_profiles`` finds the tip depth whose predicted valley line is darkest,
valley-filtered so that the shadow behind it does not count (a valley, not an edge), with
each profile standardised so that every focus counts the same. Only the tip's position along
the axis enters (from the localiser's x, y; an error there moves the estimate along the
pipette axis, ``tan(pitch)`` µm of depth per µm). Measured on the scene renderer (2 frames per
focus, 1 µm steps, x, y known to 0.3 µm): bias +0.03 µm and median absolute deviation 0.16 µm
above the tissue, +0.19 and 0.26 µm inside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from patchpilot.types import Frame

__all__ = [
    "DepthEstimate",
    "DepthOutOfRange",
    "DepthSettings",
    "DepthSweep",
    "FocusError",
    "ShankOutOfView",
    "axis_profile",
    "depth_from_profiles",
]

Vector = NDArray[np.float64]

_PROFILE_STEP_UM = 0.5
_PERPENDICULAR_UM = (-1.0, 0.0, 1.0)  # the shank is at least ~2 µm wide where it is used
_SMOOTH_UM = 1.0
_VALLEY_HALF_WIDTH_UM = 2.5
_MIN_ROWS = 4


class FocusError(ValueError):
    """A sweep from which no tip depth can be read (the message says why)."""


class ShankOutOfView(FocusError):
    """The sweep was long enough but the shank behind the tip leaves the image, so too few
    foci show its crossing (a tip near the edge of the field)."""


class DepthOutOfRange(FocusError):
    """The best depth lies at the edge of the search: the tip is beyond it (``direction``
    +1 above, -1 below)."""

    def __init__(self, message: str, direction: int) -> None:
        super().__init__(message)
        self.direction = direction


@dataclass(frozen=True)
class DepthSettings:
    """The focus sweep (µm) and how its profiles are read.

    Parameters
    ----------
    below_um, above_um
        The sweep runs from ``guess - below_um`` to ``guess + above_um``.
    step_um
        Focus step of the sweep.
    frames_per_step
        Frames averaged at each focus.
    search_half_range_um
        The tip depth is sought within this distance of the guess.
    min_crossing_um, max_crossing_um
        Only foci this far above a candidate depth are used: closer, the crossing merges
        with the tip; further, the shank is wider than the valley filter.
    min_score
        Weakest accepted valley (standardised darkness along the line); weaker means the
        shank was not seen.
    behind_um, ahead_um
        Extent of each profile back along the shank and ahead of the tip.
    """

    below_um: float = 3.0
    above_um: float = 13.0
    step_um: float = 1.0
    frames_per_step: int = 2
    search_half_range_um: float = 6.0
    min_crossing_um: float = 2.0
    max_crossing_um: float = 10.0
    min_score: float = 0.9
    behind_um: float = 36.0
    ahead_um: float = 8.0

    def __post_init__(self) -> None:
        if not (self.step_um > 0 and self.below_um >= 0 and self.above_um > self.max_crossing_um):
            raise ValueError(
                f"bad depth sweep: below {self.below_um} µm, above {self.above_um} µm, step "
                f"{self.step_um} µm (above must exceed max_crossing_um {self.max_crossing_um})"
            )
        if self.frames_per_step < 1:
            raise ValueError(f"frames_per_step must be at least 1, got {self.frames_per_step}")

    def focuses(self, guess_um: float) -> list[float]:
        """The sweep's focus positions (µm), lowest first."""
        count_below = round(self.below_um / self.step_um)
        count_above = round(self.above_um / self.step_um)
        return [guess_um + self.step_um * k for k in range(-count_below, count_above + 1)]

    def profile_um(self) -> Vector:
        """Distances back along the shank at which profiles are sampled (µm)."""
        return np.arange(-self.ahead_um, self.behind_um + 1e-9, _PROFILE_STEP_UM)


@dataclass(frozen=True)
class DepthEstimate:
    """The tip's depth (sample z, µm) and how clearly the shank crossing showed (score)."""

    z_um: float
    score: float


def axis_profile(
    frame: Frame, tip_xy_um: Sequence[float] | Vector, yaw_deg: float, along_um: Vector
) -> Vector:
    """Intensity along the projected pipette axis through the tip, back along the shank.

    Parameters
    ----------
    frame
        A 2-D frame.
    tip_xy_um
        The tip's sample x, y (µm).
    yaw_deg
        The pipette's yaw (its advance direction in the image plane).
    along_um
        Distances back from the tip (µm; negative: ahead of it).

    Returns
    -------
    ndarray
        Mean intensity across the shank (three lines 1 µm apart) at each distance; NaN
        outside the image.
    """
    image = np.asarray(frame.image, dtype=np.float64)
    if image.ndim != 2:
        raise FocusError(f"expected a 2-D image, got shape {image.shape}")
    yaw = math.radians(yaw_deg)
    ux, uy = math.cos(yaw), math.sin(yaw)
    x0, y0 = frame.sample_to_pixel(float(tip_xy_um[0]), float(tip_xy_um[1]))
    scale = 1.0 / frame.pixel_size_um
    lines = []
    for across in _PERPENDICULAR_UM:
        xs = x0 + (-along_um * ux - across * uy) * scale
        ys = y0 + (-along_um * uy + across * ux) * scale
        lines.append(
            ndimage.map_coordinates(image, [ys, xs], order=1, mode="constant", cval=np.nan)
        )
    profile: Vector = np.mean(lines, axis=0)
    return profile


def _valley_strength(profiles: NDArray[Any]) -> Vector:
    """Per profile: how much darker each point is than the points a valley-width either side,
    standardised (NaN where the profile left the image)."""
    rows = np.array(profiles, dtype=np.float64)
    missing = ~np.isfinite(rows)
    filled = rows.copy()
    for index in range(rows.shape[0]):
        finite = rows[index][~missing[index]]
        filled[index][missing[index]] = float(np.median(finite)) if finite.size else 0.0
    smooth = ndimage.gaussian_filter1d(filled, _SMOOTH_UM / _PROFILE_STEP_UM, axis=1)
    reach = round(_VALLEY_HALF_WIDTH_UM / _PROFILE_STEP_UM)
    valley = np.full_like(smooth, np.nan)
    valley[:, reach:-reach] = (
        0.5 * (smooth[:, : -2 * reach] + smooth[:, 2 * reach :]) - smooth[:, reach:-reach]
    )
    # A point whose filter touched the outside of the image is not used.
    touched = ndimage.binary_dilation(missing, structure=np.ones((1, 2 * reach + 1), bool))
    valley[touched] = np.nan
    spread = np.nanstd(valley, axis=1, keepdims=True)
    spread[~np.isfinite(spread) | (spread <= 0)] = np.inf
    standardised: Vector = valley / spread
    return standardised


def depth_from_profiles(
    focus_um: Sequence[float],
    profiles: Sequence[Vector],
    along_um: Vector,
    pitch_deg: float,
    guess_um: float,
    settings: DepthSettings | None = None,
) -> DepthEstimate:
    """The tip depth (sample z, µm) whose predicted crossing line is the clearest valley.

    Parameters
    ----------
    focus_um
        Focus of each profile (µm).
    profiles
        ``axis_profile`` at each focus (same ``along_um``).
    along_um
        Distances back along the shank of the profile samples (µm).
    pitch_deg
        The pipette's pitch.
    guess_um
        Where the tip is thought to be; the search spans ``settings.search_half_range_um``.
    settings
        Search range, crossing range and the weakest accepted valley.

    Raises
    ------
    FocusError
        Mismatched inputs, too few usable foci (``ShankOutOfView`` when the sweep was long
        enough but the shank leaves the image), a valley too weak to be the shank, or
        (``DepthOutOfRange``) a best depth at the edge of the search range.
    """
    settings = settings or DepthSettings()
    focus = np.asarray(focus_um, dtype=np.float64)
    if len(profiles) != focus.size or focus.size == 0:
        raise FocusError(f"{focus.size} focus positions but {len(profiles)} profiles")
    if not (math.isfinite(guess_um) and np.all(np.isfinite(focus))):
        raise FocusError(f"non-finite focus or guess ({guess_um} µm)")
    valley = _valley_strength(np.array(profiles))
    cot = 1.0 / math.tan(math.radians(pitch_deg))
    half = settings.search_half_range_um
    candidates = np.arange(guess_um - half, guess_um + half + 1e-9, 0.1)
    scores = np.full(candidates.size, -np.inf)
    most_rows = 0
    for k, z in enumerate(candidates):
        crossing = focus - z
        use = (crossing >= settings.min_crossing_um) & (crossing <= settings.max_crossing_um)
        most_rows = max(most_rows, int(np.count_nonzero(use)))
        values = [
            float(np.interp(c * cot, along_um, valley[i], left=np.nan, right=np.nan))
            for i, c in zip(np.flatnonzero(use), crossing[use], strict=True)
        ]
        finite = [v for v in values if math.isfinite(v)]
        if len(finite) >= _MIN_ROWS:
            scores[k] = float(np.mean(finite))
    if not np.any(np.isfinite(scores)) and most_rows >= _MIN_ROWS:
        raise ShankOutOfView(
            f"the shank leaves the image within {settings.max_crossing_um * cot:.0f} µm "
            "behind the tip: too few foci show where it crosses focus"
        )
    if not np.any(np.isfinite(scores)):
        raise FocusError(
            f"too few foci {settings.min_crossing_um:g}-{settings.max_crossing_um:g} µm above "
            "any candidate depth show the shank (out of the image or sweep too short)"
        )
    best = int(np.argmax(scores))
    score = float(scores[best])
    if score < settings.min_score:
        raise FocusError(
            f"no clear shank crossing (valley score {score:.2f} < {settings.min_score:g}): "
            "the tip is not where it was looked for"
        )
    if best in (0, candidates.size - 1):
        raise DepthOutOfRange(
            f"the shank crossing fits best at the {'bottom' if best == 0 else 'top'} of the "
            f"search ({candidates[best]:.1f} µm): the tip lies outside it",
            -1 if best == 0 else 1,
        )
    z_um = float(candidates[best])
    left, right = scores[best - 1], scores[best + 1]
    curvature = left - 2.0 * score + right
    if math.isfinite(left) and math.isfinite(right) and curvature < 0:
        z_um += 0.1 * float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))
    return DepthEstimate(z_um, score)


class DepthSweep:
    """Collects a depth sweep frame by frame (for code that is fed frames, not snapping).

    Parameters
    ----------
    tip_xy_um
        The tip's sample x, y (µm) from the localiser; profiles run through it.
    pitch_deg, yaw_deg
        The pipette's angles.
    guess_um
        Where the tip is thought to be (sample z, µm).
    settings
        The sweep.
    """

    def __init__(
        self,
        tip_xy_um: Sequence[float] | Vector,
        pitch_deg: float,
        yaw_deg: float,
        guess_um: float,
        settings: DepthSettings | None = None,
    ) -> None:
        self.settings = settings or DepthSettings()
        self.tip_xy_um = (float(tip_xy_um[0]), float(tip_xy_um[1]))
        self.pitch_deg = pitch_deg
        self.yaw_deg = yaw_deg
        self.guess_um = guess_um
        self.focuses = self.settings.focuses(guess_um)
        self.along_um = self.settings.profile_um()
        self._sums: list[Vector] = []
        self._counts: list[int] = []

    def _row(self) -> int:
        if self._counts and self._counts[-1] < self.settings.frames_per_step:
            return len(self._counts) - 1
        return len(self._counts)

    @property
    def next_focus_um(self) -> float | None:
        """The focus the next frame should be taken at; None when the sweep is complete."""
        row = self._row()
        return self.focuses[row] if row < len(self.focuses) else None

    def add(self, frame: Frame) -> None:
        """Use one frame taken at ``next_focus_um`` (the caller checks the focus)."""
        profile = axis_profile(frame, self.tip_xy_um, self.yaw_deg, self.along_um)
        if self._row() < len(self._counts):
            self._sums[-1] = self._sums[-1] + profile
            self._counts[-1] += 1
        else:
            self._sums.append(profile)
            self._counts.append(1)

    @property
    def complete(self) -> bool:
        return self.next_focus_um is None

    def estimate(self) -> DepthEstimate:
        """The tip depth from the profiles collected so far (see ``depth_from_profiles``).

        Raises
        ------
        FocusError
            The sweep is not complete, or no clear crossing was found.
        """
        if not self.complete:
            raise FocusError(f"the sweep is incomplete ({len(self._sums)} of {len(self.focuses)})")
        profiles = [s / n for s, n in zip(self._sums, self._counts, strict=True)]
        return depth_from_profiles(
            self.focuses, profiles, self.along_um, self.pitch_deg, self.guess_um, self.settings
        )
