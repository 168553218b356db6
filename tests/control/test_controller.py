"""The controller on the simulated sim-4 rig: approach, pause/resume, stop-all, manual
override, faults, stale frames, lost tips, refusals. Scored on the simulators' true tips."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

from patchpilot.config import CylinderZone, RigConfig
from patchpilot.control import PipetteState, PlanError
from patchpilot.hardware import MoveRefused
from patchpilot.hardware.simulated import SimFault
from tests.control.conftest import SimRig, build_rig
from tests.control.sim_imaging import ImagingNoise

TARGETS = {
    "P1": (-20.0, -20.0, -60.0),
    "P2": (20.0, -20.0, -70.0),
    "P3": (20.0, 20.0, -50.0),
    "P4": (-20.0, 20.0, -80.0),
}


def start(rig: SimRig, names: tuple[str, ...] = ("P1", "P2", "P3", "P4")) -> None:
    rig.give_true_calibration()
    for name in names:
        rig.controller.set_target(name, TARGETS[name])
    rig.controller.start_approach()


def run_until(rig: SimRig, condition, seconds: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    end = rig.clock.now() + seconds
    while rig.clock.now() < end:
        frame, detections = rig.imaging.snap()
        rig.controller.on_frame(frame, detections)
        if condition():
            return
    raise AssertionError(f"condition not reached in {seconds} s: {rig.controller.status()}")


def states(rig: SimRig) -> dict[str, str]:
    return {n: s.state for n, s in rig.controller.status().items()}


def standoff_error(rig: SimRig, name: str) -> float:
    unit = rig.controller.units[name]
    standoff = np.asarray(TARGETS[name]) - unit.geometry.axis * unit.geometry.standoff_um
    return float(np.linalg.norm(rig.true_tip(name) - standoff))


def test_four_pipettes_reach_their_targets(rig: SimRig, tmp_path: Path) -> None:
    plans_seen: list[str] = []
    rig.controller.signals.plans.connect(plans_seen.append)
    start(rig)
    assert plans_seen and "order:" in plans_seen[0]
    png = rig.controller.draw_plans(tmp_path / "plan.png")
    assert png.stat().st_size > 10_000
    run_until(rig, lambda: rig.controller.state.value == "idle")
    for name in TARGETS:
        status = rig.controller.status()[name]
        assert status.state == "at_target"
        assert standoff_error(rig, name) <= 1.5
        assert status.final_error_um is not None and status.final_error_um <= 1.0
        assert status.distance_to_target_um is not None and status.distance_to_target_um < 4.0
    kinds = {r["kind"] for r in rig.log.tail(20000)}
    assert {"transition", "command", "decision", "plan"} <= kinds


def test_pause_freezes_and_resume_finishes(rig: SimRig) -> None:
    start(rig)
    run_until(rig, lambda: "approaching" in states(rig).values())
    rig.controller.pause_all()
    assert all(s in ("paused", "ready", "at_target") for s in states(rig).values())
    assert rig.controller.state.value == "paused"
    rig.run(0.3, until_idle=False)  # let the brakes act
    frozen = {n: rig.true_tip(n) for n in TARGETS}
    rig.run(2.0, until_idle=False)
    for name in TARGETS:
        assert np.linalg.norm(rig.true_tip(name) - frozen[name]) < 0.1
    rig.controller.resume_all()
    run_until(rig, lambda: rig.controller.state.value == "idle")
    assert all(s == "at_target" for s in states(rig).values())


def test_stop_all_from_running(rig: SimRig) -> None:
    start(rig)
    run_until(rig, lambda: "moving" in states(rig).values(), 5.0)
    results = rig.controller.stop_all()
    assert results == dict.fromkeys(TARGETS)
    assert all(s == "stopped" for s in states(rig).values())
    assert rig.controller.state.value == "stopped"
    rig.run(0.5, until_idle=False)
    still = {n: rig.true_tip(n) for n in TARGETS}
    rig.run(2.0, until_idle=False)
    assert all(np.linalg.norm(rig.true_tip(n) - still[n]) < 0.1 for n in TARGETS)
    assert not any(m.is_busy() for m in rig.manipulators.values())
    with pytest.raises(Exception, match="Can't trigger"):
        rig.controller.take_over("P1")
    rig.controller.rearm()
    assert all(s == "ready" for s in states(rig).values())


def test_manual_override_and_release(rig: SimRig) -> None:
    start(rig)
    run_until(rig, lambda: "approaching" in states(rig).values())
    rig.controller.take_over("P1")
    assert states(rig)["P1"] == "manual" and rig.controller.status()["P1"].manual
    commands_before = len(rig.log.tail(50000, kind="command"))
    reading = rig.manipulators["P1"].position_um()
    for axis, step, speed, error in [
        (0, math.nan, 50.0, ValueError),
        (3, 5.0, 50.0, ValueError),
        (0, 5.0, math.inf, ValueError),
        (0, 600.0, 50.0, ValueError),
        (0, 500.5, 50.0, ValueError),
        (2, -400.0, 50.0, MoveRefused),  # sideways inside the tissue
    ]:
        with pytest.raises(error):
            rig.controller.jog("P1", axis, step, speed)
    with pytest.raises(ValueError, match="take it over"):
        rig.controller.jog("P2", 0, 1.0, 10.0)
    unit = rig.controller.units["P1"]
    unit.manipulator.limits = unit.manipulator.limits.model_copy(
        update={"max_um": (reading[0] + 1.0, 20000.0, 20000.0)}
    )
    with pytest.raises(MoveRefused, match="soft"):
        rig.controller.jog("P1", 0, 5.0, 50.0)
    unit.manipulator.limits = rig.config.pipette("P1").soft_limits
    assert len(rig.log.tail(50000, kind="command")) == commands_before  # nothing was sent
    assert rig.manipulators["P1"].position_um() == pytest.approx(reading, abs=0.3)
    handle = rig.controller.jog("P1", 2, 10.0, 100.0)  # up, away from the tissue
    handle.wait(5.0)
    rig.run(3.0, until_idle=False)  # the others carry on meanwhile
    assert states(rig)["P1"] == "manual"
    rig.controller.release("P1")
    run_until(rig, lambda: rig.controller.state.value == "idle", 180.0)
    assert all(s == "at_target" for s in states(rig).values())
    assert standoff_error(rig, "P1") <= 1.5


def test_bad_targets_are_refused(sim4: RigConfig) -> None:
    vessel = CylinderZone(name="vessel", center_xy_um=(-45.0, -45.0), radius_um=10.0, z_max_um=0.0)
    config = sim4.model_copy(
        update={"safety": sim4.safety.model_copy(update={"nogo_zones": (vessel,)})}
    )
    rig = build_rig(config)
    rig.give_true_calibration()
    with pytest.raises(PlanError, match="field of view"):
        rig.controller.set_target("P1", (400.0, 0.0, -50.0))
    with pytest.raises(PlanError, match="non-finite"):
        rig.controller.set_target("P1", (0.0, math.nan, -50.0))
    with pytest.raises(PlanError, match="no-go zone 'vessel'"):
        rig.controller.set_target("P1", (-10.0, -10.0, -80.0))
    with pytest.raises(ValueError, match="no pipette 'P9'"):
        rig.controller.set_target("P9", (0.0, 0.0, -50.0))
    assert rig.controller.status()["P1"].target_um is None
    frame, _ = rig.imaging.snap()
    bad = frame.__class__(np.zeros((4, 4, 3)), 1, 0.0, 1.0)
    with pytest.raises(ValueError, match="2-D"):
        rig.controller.on_frame(bad, [])


def test_stale_frames_pause_the_approach(rig: SimRig) -> None:
    start(rig, ("P1",))
    run_until(rig, lambda: states(rig)["P1"] == "approaching")
    for _ in range(40):  # no frames: the acquisition stalled
        rig.clock.advance(0.05)
        rig.controller.tick()
    status = rig.controller.status()["P1"]
    assert status.state == "paused" and "frames stale" in status.paused_because
    rig.clock.advance(0.5)
    assert not rig.manipulators["P1"].is_busy()


def test_lost_tip_pauses_for_the_operator(rig: SimRig) -> None:
    start(rig, ("P2",))
    run_until(rig, lambda: states(rig)["P2"] == "approaching")
    rig.imaging.noise = ImagingNoise(miss_rate=1.0, spurious_rate=0.0)
    run_until(rig, lambda: states(rig)["P2"] == "paused", 120.0)
    assert "tip lost" in rig.controller.status()["P2"].paused_because


def test_a_stalled_axis_faults_that_pipette_only(rig: SimRig) -> None:
    faults: list[tuple[str, str]] = []
    rig.controller.signals.fault.connect(lambda who, why: faults.append((who, why)))
    start(rig, ("P2", "P3"))
    rig.manipulators["P2"].inject_fault(SimFault.AXIS_STALL, after_s=0.05, axis=0)
    run_until(rig, lambda: states(rig)["P2"] == "fault", 10.0)
    assert faults and faults[0][0] == "P2" and "stalled" in faults[0][1]
    run_until(rig, lambda: states(rig)["P3"] == "at_target", 120.0)
    rig.manipulators["P2"].device.clear_faults()
    rig.controller.clear_fault("P2")
    assert states(rig)["P2"] == "ready"


def test_retract_after_reaching_the_target(rig: SimRig) -> None:
    start(rig, ("P3",))
    run_until(rig, lambda: rig.controller.state.value == "idle")
    with pytest.raises(ValueError, match="no home_um"):
        rig.controller.home("P3")
    rig.controller.retract("P3")
    run_until(rig, lambda: rig.controller.state.value == "idle", 60.0)
    assert states(rig)["P3"] == "ready"
    tip = rig.true_tip("P3")
    assert tip[2] == pytest.approx(rig.config.safety.safe_height_um, abs=3.0)


def test_background_ticks_run_and_stop(rig: SimRig) -> None:
    rig.give_true_calibration()
    halt = rig.controller.start_background(period_s=0.01)
    time.sleep(0.1)
    halt()
    assert rig.controller.units["P1"].state is PipetteState.READY


def test_real_time_loop_with_threads(sim4: RigConfig) -> None:
    """RealClock: frames arrive on an acquisition thread while the caller commands."""
    import threading

    from patchpilot.clock import RealClock
    from patchpilot.control import Controller
    from patchpilot.events import EventLog
    from patchpilot.hardware.simulated import SimulatedManipulator
    from tests.control.conftest import true_transform
    from tests.control.sim_imaging import SimImaging

    fast = sim4.pipette("P3").model_copy(update={"slow_speed_um_s": 80.0})
    config = sim4.model_copy(update={"pipettes": (fast,)})
    clock = RealClock()
    log = EventLog()
    manipulator = SimulatedManipulator.from_config(fast, log=log, clock=clock, seed=4)
    imaging = SimImaging({"P3": manipulator}, clock, seed=4)
    controller = Controller(config, {"P3": manipulator}, imaging, log, clock)
    controller.set_calibration("P3", true_transform(config, "P3"), uncertainty_um=3.0)
    controller.set_target("P3", (30.0, 30.0, -40.0))
    stop = threading.Event()
    errors: list[BaseException] = []

    def acquire() -> None:
        try:
            while not stop.is_set():
                frame, detections = imaging.snap()
                controller.on_frame(frame, detections)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=acquire, daemon=True)
    thread.start()
    halt = controller.start_background(period_s=0.02)
    try:
        controller.start_approach()
        deadline = time.monotonic() + 40.0
        while time.monotonic() < deadline and controller.state.value != "idle":
            time.sleep(0.05)
            assert controller.status()["P3"].state != "paused", controller.status()["P3"]
    finally:
        stop.set()
        halt()
        thread.join(timeout=5.0)
    assert not errors
    assert controller.status()["P3"].state == "at_target"


def test_others_wait_while_a_manual_pipette_is_in_their_way() -> None:
    """W is at its target under manual control; E sets off; the operator nudges W forward,
    into E's coming insertion: E must not go in until W is released (then both finish)."""
    from patchpilot.config import (
        MicroscopeConfig,
        PipetteConfig,
        SafetyConfig,
        SimulatedDriverConfig,
        SoftLimits,
    )

    def pipette(name: str, yaw: float, origin: tuple[float, float, float]) -> PipetteConfig:
        return PipetteConfig(
            name=name,
            driver=SimulatedDriverConfig(origin_um=origin, rotation_deg=(0.0, 0.0, yaw)),
            pitch_deg=30.0,
            yaw_deg=yaw,
            soft_limits=SoftLimits(min_um=(0, 0, 0), max_um=(20000,) * 3),
            target_standoff_um=2.0,
        )

    config = RigConfig(
        name="crossing",
        microscope=MicroscopeConfig(focus_limits_um=(-400.0, 400.0)),
        pipettes=(pipette("W", 0.0, (-100.0, 0.0, 60.0)), pipette("E", 180.0, (100.0, 0.0, 60.0))),
        safety=SafetyConfig(min_clearance_um=15.0, safe_height_um=120.0, approach_distance_um=80.0),
    )
    rig = build_rig(config)
    rig.give_true_calibration()
    rig.controller.set_target("W", (-36.8, 1.1, -67.8))
    rig.controller.start_approach()
    run_until(rig, lambda: rig.controller.state.value == "idle")
    assert states(rig)["W"] == "at_target"
    rig.controller.take_over("W")
    rig.controller.set_target("E", (-35.0, 5.7, -40.3))
    rig.controller.start_approach()  # clear of W where it is now
    run_until(rig, lambda: states(rig)["E"] == "moving", 5.0)
    rig.controller.jog("W", 0, 10.0, 20.0).wait(5.0)  # forward: 5 µm sideways, allowed
    rig.run(15.0, until_idle=False)
    e = rig.controller.status()["E"]
    assert "blocked by W (manual)" in (e.waiting_for + e.paused_because), e
    assert rig.true_tip("E")[2] > 0.0  # it did not go in
    rig.controller.release("W")
    run_until(rig, lambda: rig.controller.state.value == "idle", 200.0)
    assert states(rig) == {"W": "at_target", "E": "at_target"}
