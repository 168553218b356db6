"""Metrics on hand-built cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from patchpilot.localisation.metrics import (
    drop_dont_care,
    score_frame,
    soft_iou,
    summarise,
    summarise_by_count,
)


def test_known_distances_give_known_accuracy() -> None:
    # Frame A: two tips found at 1 µm and 4 µm. Frame B: one at 7 µm, one missed.
    # Frame C: no tips, one spurious detection.
    a = score_frame([[0.0, 1.0], [14.0, 0.0]], [[0.0, 0.0], [10.0, 0.0]])
    b = score_frame([[57.0, 0.0]], [[50.0, 0.0], [100.0, 100.0]])
    c = score_frame([[5.0, 5.0]], np.zeros((0, 2)))
    result = summarise([a, b, c], gate_um=10.0)
    # 3 matched pairs (1, 4, 7 µm); slots = 2 + 2 + 1 = 5.
    assert result["mean_distance_um"] == pytest.approx(4.0)
    assert result["within_3um"] == pytest.approx(1 / 5)
    assert result["within_5um"] == pytest.approx(2 / 5)
    assert result["within_10um"] == pytest.approx(3 / 5)
    assert result["precision"] == pytest.approx(3 / 4)
    assert result["recall"] == pytest.approx(3 / 4)
    assert result["n_true"] == 4 and result["n_pred"] == 4


def test_far_pair_beyond_gate_is_a_miss_and_a_false_positive() -> None:
    s = score_frame([[30.0, 0.0]], [[0.0, 0.0]])
    result = summarise([s], gate_um=10.0)
    assert result["precision"] == 0.0 and result["recall"] == 0.0
    assert result["mean_distance_um"] == pytest.approx(30.0)
    assert result["within_10um"] == 0.0


def test_breakdown_by_number_of_pipettes() -> None:
    one = score_frame([[0.0, 0.0]], [[0.0, 2.0]])
    three = score_frame([[0, 0], [20, 0], [40, 0]], [[0, 0], [20, 0], [40, 20]])
    six = score_frame(np.zeros((0, 2)), np.arange(12.0).reshape(6, 2) * 10)
    groups = summarise_by_count([one, three, six])
    assert set(groups) == {"all", "1", "3", "5+"}
    assert groups["1"]["within_3um"] == 1.0
    assert groups["3"]["within_10um"] == pytest.approx(2 / 3)
    assert groups["5+"]["recall"] == 0.0
    assert math.isnan(float(groups["5+"]["precision"]))  # type: ignore[arg-type]


def test_soft_iou() -> None:
    a = np.array([[0.0, 1.0], [0.5, 0.0]])
    assert soft_iou(a, a) == 1.0
    assert soft_iou(a, np.zeros_like(a)) == 0.0
    assert soft_iou(np.zeros(3), np.zeros(3)) == 1.0
    assert soft_iou(a, a / 2) == pytest.approx(0.5)


def test_dont_care_detections_are_dropped() -> None:
    # One true tip at (0, 0); one out-of-focus tip at (50, 0) whose visible end is (90, 0).
    segments = np.array([[50.0, 0.0, 90.0, 0.0]])
    pred = np.array([[1.0, 0.0], [70.0, 4.0], [95.0, 0.0], [50.0, 30.0]])
    kept = drop_dont_care(pred, np.array([[0.0, 0.0]]), segments, gate=10.0)
    # Near the segment (70, 4) and near its end (95, 0) are dropped; (50, 30) is a real
    # false detection and stays, as does the true match.
    assert kept.tolist() == [[1.0, 0.0], [50.0, 30.0]]
    assert drop_dont_care(pred, np.zeros((0, 2)), np.zeros((0, 4)), 10.0).shape == (4, 2)
