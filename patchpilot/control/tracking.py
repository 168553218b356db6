"""Tip identity: which found tip belongs to which pipette, frame after frame.

Each frame, every pipette's tip is predicted from its manipulator reading through its
calibration, plus a per-pipette offset (drift, backlash, calibration error) that the tracker
estimates from what it has seen. Found tips are matched to predicted ones by a Hungarian
assignment (``scipy.optimize.linear_sum_assignment``) on distances gated per pipette: the gate
widens with the offset's uncertainty. Tips whose prediction is out of the frame or far from the
focal plane are not expected and not matched. When two predictions come close to each other,
matches are still reported but the offsets are not updated from them, so two crossing tips can
never swap their identities' offsets. A tip expected but unmatched for
``tip_lost_after_frames`` frames in a row is lost.

The offset is a 3-vector (sample frame, µm). Images only see x and y; z is set from focus
sweeps (``set_offset``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linear_sum_assignment

from patchpilot.types import Frame, TipDetection

__all__ = ["Prediction", "TipMatch", "TipTracker", "TrackerSettings"]

Vector = NDArray[np.float64]
_INFEASIBLE = 1e6


@dataclass(frozen=True)
class TrackerSettings:
    """How the tracker gates and filters (µm unless said).

    Parameters
    ----------
    lost_after_frames
        Unmatched frames (while expected) before a tip is lost.
    depth_of_field_um
        A tip further than this from the focal plane is not expected to be seen.
    min_gate_um
        Gate radius with a perfectly known offset.
    gate_sigmas
        The gate grows by this many offset standard deviations.
    edge_margin_px
        A tip predicted within this of the image border is not expected.
    measurement_noise_um
        Standard deviation of a found tip's position.
    drift_um_per_s
        Growth of the offset's standard deviation with time (slow drift of the tip).
    steady_speed_um_s
        Offsets only learn from tips moving slower than this (readings lag moving tips).
    confident_sigma_um
        Offsets only learn from matches while their uncertainty is at most this: with a
        wider gate the nearest tip may be another pipette's, so an uncertain pipette's
        identity is established by moving it (see ``correction``), not by the tracker.
    """

    lost_after_frames: int = 10
    depth_of_field_um: float = 8.0
    min_gate_um: float = 4.0
    gate_sigmas: float = 3.0
    edge_margin_px: float = 3.0
    measurement_noise_um: float = 0.5
    drift_um_per_s: float = 0.01
    steady_speed_um_s: float = 25.0
    confident_sigma_um: float = 3.0


@dataclass(frozen=True)
class Prediction:
    """Where the calibration puts a tip (sample µm, without the tracked offset) and how fast
    its pipette is being moved (µm/s; 0 when still)."""

    position_um: Vector
    speed_um_s: float = 0.0


@dataclass(frozen=True)
class TipMatch:
    """A found tip assigned to a pipette in one frame."""

    pipette: str
    seen_um: Vector
    """x, y from the image; z is the expected z (images do not show depth)."""
    expected_um: Vector
    detection: TipDetection
    ambiguous: bool


@dataclass
class _Track:
    offset_um: Vector
    sigma_xy_um: float
    sigma_z_um: float
    misses: int = 0
    lost: bool = False
    last_seen_s: float | None = None
    last_match: TipMatch | None = None


class TipTracker:
    """Per-pipette offsets, identities and lost flags (see the module docstring).

    Parameters
    ----------
    names
        The pipettes.
    settings
        Gates and filters.
    initial_sigma_um
        Uncertainty of every offset before anything is seen or measured.
    """

    def __init__(
        self,
        names: Iterable[str],
        settings: TrackerSettings | None = None,
        initial_sigma_um: float = 5.0,
    ) -> None:
        self.settings = settings or TrackerSettings()
        self._tracks = {
            name: _Track(np.zeros(3), initial_sigma_um, initial_sigma_um) for name in names
        }
        self._last_frame_s: float | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._tracks)

    def _track(self, name: str) -> _Track:
        try:
            return self._tracks[name]
        except KeyError:
            raise KeyError(f"no tracked pipette {name!r}") from None

    def offset_um(self, name: str) -> Vector:
        return self._track(name).offset_um.copy()

    def sigma_um(self, name: str) -> float:
        """Current uncertainty of the pipette's offset (µm, the larger of lateral and depth)."""
        track = self._track(name)
        return max(track.sigma_xy_um, track.sigma_z_um)

    def is_confident(self, name: str) -> bool:
        """Whether the pipette's lateral offset is known well enough to trust its matches."""
        return self._track(name).sigma_xy_um <= self.settings.confident_sigma_um

    def is_lost(self, name: str) -> bool:
        return self._track(name).lost

    def misses(self, name: str) -> int:
        return self._track(name).misses

    def last_match(self, name: str) -> TipMatch | None:
        return self._track(name).last_match

    def reset(
        self, name: str, sigma_um: float, offset_um: Sequence[float] = (0.0, 0.0, 0.0)
    ) -> None:
        """Forget what was learnt (a new calibration, a manual move of unknown size)."""
        self._tracks[name] = _Track(np.asarray(offset_um, dtype=np.float64), sigma_um, sigma_um)

    def set_offset(self, name: str, offset_um: ArrayLike, sigma_um: float) -> None:
        """Set the offset from a 3-D measurement (a focus sweep and averaged positions)."""
        track = self._track(name)
        offset = np.asarray(offset_um, dtype=np.float64)
        if offset.shape != (3,) or not np.all(np.isfinite(offset)):
            raise ValueError(f"offset must be 3 finite numbers, got {offset_um!r}")
        track.offset_um = offset
        track.sigma_xy_um = track.sigma_z_um = float(sigma_um)
        track.misses = 0
        track.lost = False

    def inflate(self, name: str, sigma_um: float) -> None:
        """Raise the uncertainty to at least ``sigma_um`` (e.g. after a move of unknown quality)."""
        track = self._track(name)
        track.sigma_xy_um = max(track.sigma_xy_um, sigma_um)
        track.sigma_z_um = max(track.sigma_z_um, sigma_um)

    def expected_um(self, name: str, prediction: Prediction) -> Vector:
        return np.asarray(prediction.position_um, dtype=np.float64) + self._track(name).offset_um

    def gate_um(self, name: str, speed_um_s: float = 0.0, frame_period_s: float = 0.0) -> float:
        track = self._track(name)
        s = self.settings
        return s.min_gate_um + s.gate_sigmas * track.sigma_xy_um + speed_um_s * frame_period_s

    def is_expected(self, name: str, frame: Frame, prediction: Prediction) -> bool:
        """Whether the tip should be visible: inside the frame and near the focal plane."""
        expected = self.expected_um(name, prediction)
        track = self._track(name)
        x_px, y_px = frame.sample_to_pixel(float(expected[0]), float(expected[1]))
        margin = self.settings.edge_margin_px
        inside = (
            margin <= x_px <= frame.width_px - 1 - margin
            and margin <= y_px <= frame.height_px - 1 - margin
        )
        near_focus = abs(float(expected[2]) - frame.focus_um) <= (
            self.settings.depth_of_field_um + 2.0 * track.sigma_z_um
        )
        return inside and near_focus

    def update(
        self,
        frame: Frame,
        detections: Sequence[TipDetection],
        predictions: Mapping[str, Prediction],
        frame_period_s: float = 0.0,
    ) -> dict[str, TipMatch]:
        """Match this frame's tips to pipettes and update offsets and lost flags.

        Parameters
        ----------
        frame
            The image the detections come from (its pixel size, field and focus are used).
        detections
            Tips found in it.
        predictions
            Calibrated positions of the pipettes to track (others are left alone).
        frame_period_s
            Time between frames; widens the gate of moving pipettes by their travel.

        Returns
        -------
        dict
            Pipette name to its match, for the pipettes matched in this frame.
        """
        s = self.settings
        elapsed_s = 0.0 if self._last_frame_s is None else frame.timestamp_s - self._last_frame_s
        self._last_frame_s = frame.timestamp_s
        growth = s.drift_um_per_s * max(elapsed_s, 0.0)
        for name in predictions:
            track = self._track(name)
            track.sigma_xy_um += growth
            track.sigma_z_um += growth
        expected_names = [n for n, p in predictions.items() if self.is_expected(n, frame, p)]
        seen = np.array(
            [frame.pixel_to_sample_um(d.x_px, d.y_px) for d in detections], dtype=np.float64
        ).reshape(-1, 2)
        expected = {n: self.expected_um(n, predictions[n]) for n in expected_names}
        gates = {
            n: self.gate_um(n, predictions[n].speed_um_s, frame_period_s) for n in expected_names
        }
        assignment = self._assign(expected_names, expected, gates, seen)
        ambiguous = self._ambiguous(expected_names, expected, gates)
        matches: dict[str, TipMatch] = {}
        for name in expected_names:
            track = self._track(name)
            column = assignment.get(name)
            if column is None:
                track.misses += 1
                if track.misses >= s.lost_after_frames:
                    track.lost = True
                continue
            seen_um = np.array([seen[column, 0], seen[column, 1], expected[name][2]])
            match = TipMatch(name, seen_um, expected[name], detections[column], name in ambiguous)
            matches[name] = match
            track.misses = 0
            track.lost = False
            track.last_seen_s = frame.timestamp_s
            track.last_match = match
            steady = predictions[name].speed_um_s <= s.steady_speed_um_s
            if steady and name not in ambiguous and self.is_confident(name):
                self._learn(track, seen_um[:2] - expected[name][:2])
        return matches

    def _learn(self, track: _Track, innovation_xy: Vector) -> None:
        """Kalman update of the lateral offset from one found tip."""
        noise = self.settings.measurement_noise_um
        gain = track.sigma_xy_um**2 / (track.sigma_xy_um**2 + noise**2)
        track.offset_um[:2] += gain * innovation_xy
        track.sigma_xy_um = math.sqrt(gain) * noise

    @staticmethod
    def _assign(
        names: Sequence[str],
        expected: Mapping[str, Vector],
        gates: Mapping[str, float],
        seen: Vector,
    ) -> dict[str, int]:
        """Hungarian assignment with one 'unmatched' column per pipette at the gate's cost."""
        if not names or seen.shape[0] == 0:
            return {}
        n_pipettes, n_seen = len(names), seen.shape[0]
        cost = np.full((n_pipettes, n_seen + n_pipettes), _INFEASIBLE)
        for row, name in enumerate(names):
            distance = np.linalg.norm(seen - expected[name][:2], axis=1)
            normalised = (distance / gates[name]) ** 2
            cost[row, :n_seen] = np.where(distance <= gates[name], normalised, _INFEASIBLE)
            cost[row, n_seen + row] = 1.0
        rows, columns = linear_sum_assignment(cost)
        return {
            names[r]: int(c)
            for r, c in zip(rows, columns, strict=True)
            if c < n_seen and cost[r, c] < _INFEASIBLE
        }

    @staticmethod
    def _ambiguous(
        names: Sequence[str], expected: Mapping[str, Vector], gates: Mapping[str, float]
    ) -> set[str]:
        """Pipettes whose gates overlap another's: their matches must not teach offsets."""
        result: set[str] = set()
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                distance = float(np.linalg.norm(expected[a][:2] - expected[b][:2]))
                if distance < gates[a] + gates[b]:
                    result.update((a, b))
        return result
