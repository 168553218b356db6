"""Operator actions the panel needs: jogging along the pipette axis (4th axis or through the
calibration), no-go zones drawn while running (every plan re-checked), and the raw reading of
a pipette that is not calibrated yet."""

from __future__ import annotations

import math

import numpy as np
import pytest

from patchpilot.config import CylinderZone, RigConfig, SoftLimits
from patchpilot.control import PipetteState
from patchpilot.hardware import MoveRefused
from tests.control.conftest import SimRig, build_rig
from tests.control.test_controller import TARGETS, run_until, start, states


def _moves(rig: SimRig, name: str) -> int:
    return sum(
        1
        for e in rig.log.tail(50000, kind="command")
        if e["message"] == "move" and e["source"] == name
    )


def test_jog_along_the_axis_through_the_calibration(rig: SimRig) -> None:
    """P1 has three axes: the step goes through the calibration, along its axis only."""
    rig.give_true_calibration(uncertainty_um=1.0)
    rig.controller.take_over("P1")
    before = rig.true_tip("P1")
    rig.controller.jog_along_axis("P1", 20.0, 50.0).wait(5.0)
    moved = rig.true_tip("P1") - before
    axis = rig.controller.units["P1"].geometry.axis
    # Each axis takes up to half of P1's 1.5 µm backlash dead band on its first move.
    assert float(moved @ axis) == pytest.approx(20.0, abs=1.5)
    assert float(np.linalg.norm(moved - (moved @ axis) * axis)) < 1.0
    rig.controller.jog_along_axis("P1", -20.0, 50.0).wait(5.0)
    assert np.linalg.norm(rig.true_tip("P1") - before) < 2.0


def _with_four_axis_limits(config: RigConfig, name: str) -> RigConfig:
    pipettes = []
    for p in config.pipettes:
        if p.name == name:
            limits = SoftLimits(
                min_um=(*p.soft_limits.min_um[:3], 0.0), max_um=(*p.soft_limits.max_um[:3], 20000.0)
            )
            p = p.model_copy(update={"soft_limits": limits})
        pipettes.append(p)
    return config.model_copy(update={"pipettes": tuple(pipettes)})


def test_jog_along_the_axis_on_a_fourth_axis(sim4: RigConfig) -> None:
    """P4 is a uMp-4 with 4-axis limits: its D axis moves the tip along the pipette, calibrated
    or not."""
    rig = build_rig(_with_four_axis_limits(sim4, "P4"))
    rig.controller.take_over("P4")
    reading = rig.manipulators["P4"].position_um()
    before = rig.true_tip("P4")
    rig.controller.jog_along_axis("P4", 15.0, 40.0).wait(5.0)
    after = rig.manipulators["P4"].position_um()
    assert after[3] - reading[3] == pytest.approx(15.0, abs=0.3)
    assert after[:3] == pytest.approx(reading[:3], abs=0.3)
    axis = rig.controller.units["P4"].geometry.axis
    assert float((rig.true_tip("P4") - before) @ axis) == pytest.approx(15.0, abs=1.5)


def test_a_fourth_axis_without_limits_stays_put(rig: SimRig) -> None:
    """sim-4 gives P4 three-axis limits: its D axis may not move, so the jog goes through the
    calibration (and needs one)."""
    rig.controller.take_over("P4")
    with pytest.raises(ValueError, match="no 4th axis with soft limits"):
        rig.controller.jog_along_axis("P4", 15.0, 40.0)
    rig.give_true_calibration(uncertainty_um=1.0)  # P4 stays under manual control
    reading = rig.manipulators["P4"].position_um()
    before = rig.true_tip("P4")
    rig.controller.jog_along_axis("P4", 15.0, 40.0).wait(5.0)
    assert rig.manipulators["P4"].position_um()[3] == pytest.approx(reading[3], abs=0.3)
    axis = rig.controller.units["P4"].geometry.axis
    assert float((rig.true_tip("P4") - before) @ axis) == pytest.approx(15.0, abs=1.5)


def test_axial_jogs_are_checked_before_anything_moves(rig: SimRig) -> None:
    with pytest.raises(ValueError, match="take it over"):
        rig.controller.jog_along_axis("P1", 5.0, 10.0)
    rig.controller.take_over("P1")
    with pytest.raises(ValueError, match="not calibrated and has no 4th axis"):
        rig.controller.jog_along_axis("P1", 5.0, 10.0)
    rig.give_true_calibration(uncertainty_um=1.0)
    bad = [
        (math.nan, 10.0, "step"),
        (501.0, 10.0, "step"),
        (5.0, 0.0, "speed"),
        (5.0, 1e9, "speed"),
    ]
    for step, speed, what in bad:
        with pytest.raises(ValueError, match=what):
            rig.controller.jog_along_axis("P1", step, speed)
    # P1 and P3 face each other on the x = y diagonal: their axes cross about 150 µm on.
    rig.controller.take_over("P3")
    rig.controller.jog_along_axis("P3", 158.0, 500.0).wait(5.0)
    with pytest.raises(MoveRefused, match="within"):
        rig.controller.jog_along_axis("P1", 140.0, 100.0)
    assert _moves(rig, "P1") == 0


def test_an_axial_jog_into_a_zone_is_refused(rig: SimRig) -> None:
    """P1 at its target in the tissue; a vessel drawn just ahead of it."""
    start(rig, ("P1",))
    run_until(rig, lambda: rig.controller.state.value == "idle", 150.0)
    assert states(rig)["P1"] == "at_target"
    tip = rig.controller.status()["P1"].position_um
    assert tip is not None
    axis = rig.controller.units["P1"].geometry.axis
    ahead = np.asarray(tip) + 15.0 * axis
    rig.controller.set_nogo_zones(
        [CylinderZone(name="vessel", center_xy_um=(ahead[0], ahead[1]), radius_um=4.0)]
    )
    rig.controller.take_over("P1")
    moves = _moves(rig, "P1")
    with pytest.raises(MoveRefused, match="no-go zone 'vessel'"):
        rig.controller.jog_along_axis("P1", 10.0, 5.0)
    rig.controller.jog_along_axis("P1", -10.0, 5.0).wait(5.0)  # backing out is fine
    assert _moves(rig, "P1") == moves + 1


def test_a_zone_drawn_on_a_moving_path_pauses_that_pipette(rig: SimRig) -> None:
    start(rig, ("P1", "P3"))
    run_until(rig, lambda: states(rig)["P1"] == "approaching", 120.0)
    target = np.asarray(TARGETS["P1"])
    refused = rig.controller.set_nogo_zones(
        [
            {
                "kind": "cylinder",
                "name": "drawn",
                "center_xy_um": (target[0], target[1]),
                "radius_um": 6.0,
            }
        ]
    )
    assert "P1" in refused and "drawn" in refused["P1"]
    status = rig.controller.status()["P1"]
    assert status.state == "paused" and "no-go zone 'drawn'" in status.paused_because
    assert rig.controller.config.safety.nogo_zones[0].name == "drawn"
    events = [e for e in rig.log.tail(50000) if e["message"] == "no-go zones set"]
    assert events and events[-1]["zones"][0]["radius_um"] == 6.0
    # The others carry on; a new target through the zone is refused by the planner.
    run_until(rig, lambda: states(rig)["P3"] == "at_target", 150.0)
    with pytest.raises(ValueError, match="no-go zone"):
        rig.controller.set_target("P1", TARGETS["P1"])
    rig.controller.set_nogo_zones([])
    assert rig.controller.config.safety.nogo_zones == ()


def test_bad_zones_change_nothing(rig: SimRig) -> None:
    with pytest.raises(ValueError, match="no-go zone 0"):
        rig.controller.set_nogo_zones(
            [{"kind": "cylinder", "center_xy_um": (0, 0), "radius_um": -1}]
        )
    with pytest.raises(ValueError, match="no-go zone 1"):
        rig.controller.set_nogo_zones(
            [CylinderZone(center_xy_um=(0.0, 0.0), radius_um=3.0), {"kind": "sphere"}]
        )
    with pytest.raises(ValueError, match="sequence of zones"):
        rig.controller.set_nogo_zones("vessel")  # type: ignore[arg-type]
    assert rig.controller.config.safety.nogo_zones == ()


def test_status_of_an_uncalibrated_pipette_shows_its_reading(rig: SimRig) -> None:
    rig.run(0.1, until_idle=False)
    status = rig.controller.status()
    assert status["P1"].position_um is None  # sample frame unknown before calibration
    assert status["P1"].device_position_um == pytest.approx(
        rig.manipulators["P1"].position_um(), abs=0.3
    )
    assert len(status["P4"].device_position_um or ()) == 4  # the D axis too
    assert status["P2"].as_dict()["device_position_um"] is not None
    assert rig.controller.units["P1"].state is PipetteState.IDLE
