"""Tip identity: Hungarian matching, offsets, lost tips, crossing tips never swap."""

from __future__ import annotations

import numpy as np
import pytest

from patchpilot.control.tracking import Prediction, TipTracker, TrackerSettings
from patchpilot.types import Frame, TipDetection


def frame(index: int, focus_um: float = 0.0) -> Frame:
    return Frame(np.zeros((256, 256), np.float32), index, index / 30.0, 1.0, (0.0, 0.0), focus_um)


def detect(f: Frame, xy: tuple[float, float]) -> TipDetection:
    x_px, y_px = f.sample_to_pixel(*xy)
    return TipDetection(x_px, y_px, x_px, y_px, 0.9)


def test_matches_and_learns_offsets() -> None:
    tracker = TipTracker(["A", "B"], TrackerSettings(), initial_sigma_um=1.0)
    predictions = {
        "A": Prediction(np.array([-40.0, 0.0, 0.0])),
        "B": Prediction(np.array([40.0, 5.0, 0.0])),
    }
    gate_before = tracker.gate_um("A")
    for i in range(30):
        f = frame(i)
        matches = tracker.update(f, [detect(f, (41.0, 6.0)), detect(f, (-38.5, 0.5))], predictions)
        assert set(matches) == {"A", "B"}
        assert matches["A"].seen_um[0] == pytest.approx(-38.5, abs=1e-6)
    np.testing.assert_allclose(tracker.offset_um("A")[:2], (1.5, 0.5), atol=0.05)
    np.testing.assert_allclose(tracker.offset_um("B")[:2], (1.0, 1.0), atol=0.05)
    assert tracker.gate_um("A") < gate_before - 1.0  # the lateral uncertainty shrank


def test_lost_after_n_frames_but_not_when_out_of_view() -> None:
    tracker = TipTracker(["A"], TrackerSettings(lost_after_frames=5), initial_sigma_um=1.0)
    visible = {"A": Prediction(np.array([0.0, 0.0, 0.0]))}
    for i in range(4):
        tracker.update(frame(i), [], visible)
    assert not tracker.is_lost("A") and tracker.misses("A") == 4
    tracker.update(frame(4), [], visible)
    assert tracker.is_lost("A")
    f = frame(5)
    tracker.update(f, [detect(f, (0.3, 0.0))], visible)
    assert not tracker.is_lost("A")
    # Out of frame, or far from focus: not expected, so no misses accumulate.
    for i in range(10):
        tracker.update(frame(10 + i), [], {"A": Prediction(np.array([500.0, 0.0, 0.0]))})
        tracker.update(frame(30 + i, focus_um=80.0), [], visible)
    assert tracker.misses("A") == 0


def test_crossing_tips_never_swap() -> None:
    """Two tips cross paths (predictions exact up to a drifting offset, noisy detections)."""
    rng = np.random.default_rng(2)
    tracker = TipTracker(["A", "B"], TrackerSettings(), initial_sigma_um=0.5)
    true_offset = {"A": np.array([0.8, -0.4]), "B": np.array([-0.6, 0.7])}
    for i in range(120):
        s = i / 119.0
        predicted = {
            "A": np.array([-60.0 + 120.0 * s, -20.0 + 40.0 * s, 0.0]),
            "B": np.array([60.0 - 120.0 * s, -20.0 + 40.0 * s, 0.0]),
        }
        f = frame(i)
        truth = {n: predicted[n][:2] + true_offset[n] for n in predicted}
        detections = [detect(f, tuple(truth[n] + rng.normal(0, 0.4, 2))) for n in ("B", "A")]
        if rng.random() < 0.1:
            detections.append(detect(f, tuple(rng.uniform(-100, 100, 2))))
        matches = tracker.update(
            f, detections, {n: Prediction(p, 100.0) for n, p in predicted.items()}
        )
        for name, match in matches.items():
            assert np.linalg.norm(match.seen_um[:2] - truth[name]) < 2.0, (i, name)
    for name in ("A", "B"):
        assert np.linalg.norm(tracker.offset_um(name)[:2]) < 1.5


def test_uncertain_tracks_match_but_do_not_learn() -> None:
    tracker = TipTracker(["A"], TrackerSettings(), initial_sigma_um=20.0)
    f = frame(0)
    matches = tracker.update(f, [detect(f, (30.0, 0.0))], {"A": Prediction(np.zeros(3))})
    assert "A" in matches  # inside the wide gate
    assert not tracker.is_confident("A")
    np.testing.assert_allclose(tracker.offset_um("A"), 0.0)
    tracker.set_offset("A", (30.0, 0.0, 2.0), 0.3)
    assert tracker.is_confident("A")
    with pytest.raises(ValueError, match="3 finite"):
        tracker.set_offset("A", (np.nan, 0.0, 0.0), 0.3)
    with pytest.raises(KeyError, match="no tracked pipette"):
        tracker.offset_um("Z")
