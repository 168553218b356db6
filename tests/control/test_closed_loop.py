"""Random closed-loop scenarios (a modest number; ``patchpilot benchmark approach`` runs many):
calibration error, drift, backlash and localiser noise, scored on the physical tips."""

from __future__ import annotations

import numpy as np

from patchpilot.scenarios import ScenarioResult, run_scenario

STALE_SEEDS = (11, 12, 13, 14, 15, 16)
AUTOCAL_SEEDS = (21, 22, 23)


def _check(results: list[ScenarioResult]) -> None:
    for result in results:
        assert result.success, (result.seed, result.mode, result.notes)
        assert result.collisions == 0 and result.nogo_entries == 0
        assert result.lateral_moves_in_tissue == 0
        assert result.max_off_axis_in_tissue_um <= 10.0
    errors = np.array([e for r in results for e in r.final_errors_um])
    assert errors.size == sum(r.pipettes for r in results)
    assert np.median(errors) <= 1.0
    assert np.percentile(errors, 95) <= 2.0


def test_stale_calibrations_are_corrected_from_the_images() -> None:
    """Calibrations off by up to 50 µm and 3 degrees: measured in place, then corrected."""
    results = [run_scenario(seed, "stale") for seed in STALE_SEEDS]
    _check(results)
    assert sum(r.corrections for r in results) > 0


def test_self_calibrated_rig_reaches_its_targets() -> None:
    results = [run_scenario(seed, "autocal") for seed in AUTOCAL_SEEDS]
    _check(results)
    residuals = [e for r in results for e in r.calibration_residuals_um]
    assert residuals and max(residuals) <= 1.0
