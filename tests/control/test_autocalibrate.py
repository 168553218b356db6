"""Automatic calibration on the simulated rig: accuracy, several tips in view, the rules."""

from __future__ import annotations

import numpy as np
import pytest

from patchpilot.config import RigConfig
from patchpilot.control import ManipulatorTransform, PipetteState
from tests.control.conftest import SimRig, build_rig, true_transform


def test_calibrate_all_finds_every_mounting(rig: SimRig) -> None:
    """Four tips in view at the same depth; each pipette finds its own by moving it."""
    start = {n: rig.true_tip(n) for n in rig.manipulators}
    outcomes = rig.controller.calibrate_all()
    for name, outcome in outcomes.items():
        assert outcome.accepted, outcome.reason
        calibration = outcome.calibration
        assert calibration is not None
        assert calibration.rms_residual_um <= 1.0
        truth = true_transform(rig.config, name)
        assert calibration.transform.rotation_error_deg(truth) < 1.0
        reading = rig.manipulators[name].position_um()
        # Backlash (up to 2 µm here) and drift are what is left; the closed loop removes them.
        assert np.linalg.norm(calibration.transform.to_sample(reading) - rig.true_tip(name)) < 3.0
        assert np.linalg.norm(rig.true_tip(name) - start[name]) < 3.0  # put back where it was
        assert rig.controller.units[name].state is PipetteState.READY
    status = rig.controller.status()
    assert all(
        s.calibration_residual_um is not None and s.calibration_residual_um <= 1.0
        for s in status.values()
    )
    records = rig.log.tail(20000, kind="calibration")
    assert sum(r["message"] == "calibration accepted" for r in records) == 4
    assert rig.controller.state.value == "idle"


def test_the_others_stay_parked(rig: SimRig) -> None:
    before = {n: rig.true_tip(n) for n in ("P2", "P3", "P4")}
    outcome = rig.controller.calibrate("P1")
    assert outcome.accepted
    for name, tip in before.items():
        assert np.linalg.norm(rig.true_tip(name) - tip) < 0.2  # drift only
    assert rig.controller.units["P2"].state is PipetteState.IDLE


def test_a_big_tip_jump_needs_confirmation(rig: SimRig) -> None:
    truth = true_transform(rig.config, "P1")
    earlier = ManipulatorTransform(truth.matrix, truth.offset_um + np.array([35.0, -20.0, 0.0]))
    rig.controller.set_calibration("P1", earlier, uncertainty_um=6.0)
    outcome = rig.controller.calibrate("P1")
    assert outcome.verdict == "needs_confirmation" and "confirm" in outcome.reason
    unit = rig.controller.units["P1"]
    assert (
        unit.calibration is not None
        and unit.calibration.transform is not outcome.calibration.transform
    )  # type: ignore[union-attr]
    assert rig.controller.status()["P1"].needs_confirmation
    rig.controller.confirm_calibration("P1")
    assert unit.calibration is outcome.calibration
    assert not rig.controller.status()["P1"].needs_confirmation
    with pytest.raises(ValueError, match="no calibration waiting"):
        rig.controller.confirm_calibration("P1")


def test_too_close_to_the_tissue_is_refused(sim4: RigConfig) -> None:
    low = sim4.model_copy(deep=True)
    pipettes = list(low.pipettes)
    driver = pipettes[0].driver.model_copy(update={"origin_um": (-95.0, -95.0, 12.0)})
    pipettes[0] = pipettes[0].model_copy(update={"driver": driver})
    rig = build_rig(low.model_copy(update={"pipettes": tuple(pipettes)}))
    outcome = rig.controller.calibrate("P1")
    assert outcome.verdict == "failed" and "too close to the tissue" in outcome.reason
    assert rig.controller.units["P1"].state is PipetteState.IDLE
    assert rig.true_tip("P1")[2] > 5.0
