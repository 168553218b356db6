"""Hungarian matching of predicted and true tips."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from patchpilot.localisation.matching import match_points


def test_finds_the_optimal_pairing_not_the_greedy_one() -> None:
    # Greedy nearest-first would pair pred 0 with true 1 (distance 1) and leave a long pair.
    pred = np.array([[0.0, 0.0], [2.0, 0.0]])
    true = np.array([[-1.0, 0.0], [1.0, 0.0]])
    match = match_points(pred, true)
    pairs = dict(zip(match.pred_index.tolist(), match.true_index.tolist(), strict=True))
    assert pairs == {0: 0, 1: 1}
    np.testing.assert_allclose(match.distance, [1.0, 1.0])


def test_permutation_invariance() -> None:
    rng = np.random.default_rng(0)
    pred = rng.uniform(0, 100, (5, 2))
    true = pred[[3, 0, 4, 1, 2]] + rng.normal(0, 0.5, (5, 2))
    reference = match_points(pred, true).distance.sum()
    for perm in itertools.islice(itertools.permutations(range(5)), 0, 120, 7):
        shuffled = match_points(pred[list(perm)], true)
        assert shuffled.distance.sum() == pytest.approx(reference)
        assert shuffled.distance.max() < 3.0


def test_more_than_four_tips_and_rectangular() -> None:
    true = np.array([[10.0 * i, 5.0 * i] for i in range(8)])
    pred = true[::-1][:6] + 0.25
    match = match_points(pred, true)
    assert len(match.distance) == 6
    np.testing.assert_allclose(match.distance, np.hypot(0.25, 0.25))
    assert sorted(match.unmatched_true.tolist()) == [0, 1]
    assert match.unmatched_pred.size == 0


@pytest.mark.parametrize(("n_pred", "n_true"), [(0, 0), (0, 3), (2, 0)])
def test_empty_sets(n_pred: int, n_true: int) -> None:
    match = match_points(np.ones((n_pred, 2)), np.ones((n_true, 2)))
    assert match.distance.size == 0
    assert match.unmatched_pred.size == n_pred
    assert match.unmatched_true.size == n_true


def test_gate_drops_far_pairs() -> None:
    match = match_points([[0.0, 0.0], [50.0, 0.0]], [[1.0, 0.0], [0.0, 80.0]], gate=10.0)
    assert match.distance.tolist() == [1.0]
    assert match.unmatched_true.tolist() == [1]


def test_bad_points_are_rejected() -> None:
    with pytest.raises(ValueError, match="pred"):
        match_points(np.ones((3, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        match_points([[np.nan, 0.0]], [[0.0, 0.0]])
