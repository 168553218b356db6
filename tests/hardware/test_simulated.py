"""The simulated manipulator: kinematics, mounting, imperfections, faults, clocks."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from patchpilot.clock import RealClock, SimClock
from patchpilot.config import load_config
from patchpilot.events import EventLog
from patchpilot.hardware import (
    CommunicationError,
    MoveStatus,
    SimFault,
    create_manipulator,
    create_manipulators,
)
from patchpilot.hardware._kinematics import mounting_matrix, plan_trapezoid
from patchpilot.hardware.simulated import SimulatedManipulator
from patchpilot.types import pipette_axis

from .conftest import make_pipette

Make = Callable[..., SimulatedManipulator]


def test_trapezoid_profile_reaches_speed_and_distance() -> None:
    profile = plan_trapezoid(100.0, 1000.0, 20000.0)
    assert profile.duration_s == pytest.approx(0.15)
    assert profile.peak_speed_um_s == pytest.approx(1000.0)
    assert profile.distance_at(profile.duration_s) == pytest.approx(100.0)
    assert profile.distance_at(profile.duration_s / 2) == pytest.approx(50.0)
    short = plan_trapezoid(1.0, 1000.0, 20000.0)  # too short to reach the speed
    assert short.peak_speed_um_s < 1000.0
    assert short.distance_at(short.duration_s) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="distance"):
        plan_trapezoid(float("nan"), 1.0, 1.0)


def test_100um_step_at_fast_speed_settles_in_about_a_tenth_of_a_second(
    make_sim: Make, sim_clock: SimClock
) -> None:
    sim = make_sim(readout_noise_um=0.0)
    start = np.array(sim.position_um())
    handle = sim.move_by([100.0, 0.0, 0.0], 1000.0)
    assert handle.wait(2.0) is MoveStatus.FINISHED
    assert handle.ended_s is not None
    elapsed_s = handle.ended_s - handle.started_s
    assert 0.1 <= elapsed_s <= 0.25
    assert handle.estimated_duration_s == pytest.approx(0.15 + 0.02 + 0.005)
    np.testing.assert_allclose(sim.position_um(), start + np.array([100.0, 0.0, 0.0]), atol=0.01)
    assert not sim.is_busy()


def test_speed_profile_never_exceeds_the_commanded_speed(
    make_sim: Make, sim_clock: SimClock
) -> None:
    sim = make_sim(readout_noise_um=0.0, axis_scale=(1.0, 1.0, 1.0))
    sim.move_by([0.0, 500.0, 0.0], 800.0)
    speeds = []
    for _ in range(80):
        sim_clock.advance(0.01)
        speeds.append(float(np.linalg.norm(sim.true_velocity_sample_um_s())))
    assert max(speeds) == pytest.approx(800.0, rel=0.01)
    assert speeds[0] < 800.0  # still accelerating 10 ms in
    assert speeds[-1] == pytest.approx(0.0, abs=1e-6)


def test_mounting_maps_each_axis_to_its_rotated_scaled_column(
    make_sim: Make, sim_clock: SimClock
) -> None:
    mounting = {"rotation_deg": (0.8, -1.2, 47.0), "axis_scale": (1.01, 0.99, 1.0)}
    sim = make_sim(readout_noise_um=0.0, axis_skew_deg=0.8, **mounting)
    expected = mounting_matrix(mounting["rotation_deg"], mounting["axis_scale"], 0.8)
    np.testing.assert_allclose(sim.true_tip_sample_um(), (0.0, 0.0, 200.0))
    for axis in range(3):
        before = sim.true_tip_sample_um()
        step = [0.0, 0.0, 0.0]
        step[axis] = 100.0
        assert sim.move_by(step, 1000.0).wait(2.0) is MoveStatus.FINISHED
        np.testing.assert_allclose(
            sim.true_tip_sample_um() - before, 100.0 * expected[:, axis], atol=1e-6
        )


def test_backlash_leaves_the_tip_behind_after_a_reversal(make_sim: Make) -> None:
    sim = make_sim(readout_noise_um=0.0, backlash_um=2.0)
    start_tip = sim.true_tip_sample_um()
    assert sim.move_by([50.0, 0.0, 0.0], 500.0).wait(2.0) is MoveStatus.FINISHED
    assert sim.move_by([-50.0, 0.0, 0.0], 500.0).wait(2.0) is MoveStatus.FINISHED
    # The reading is back where it started but the tip is half the dead band ahead.
    np.testing.assert_allclose(sim.position_um(), (10000.0, 10000.0, 10000.0), atol=1e-6)
    column = mounting_matrix((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 0.0)[:, 0]
    np.testing.assert_allclose(sim.true_tip_sample_um() - start_tip, 1.0 * column, atol=1e-6)


def test_drift_moves_the_tip_but_not_the_reading(make_sim: Make, sim_clock: SimClock) -> None:
    sim = make_sim(readout_noise_um=0.0, drift_um_per_min=(0.6, -0.3, 0.0))
    before_tip, before_reading = sim.true_tip_sample_um(), sim.position_um()
    sim_clock.advance(120.0)
    np.testing.assert_allclose(sim.true_tip_sample_um() - before_tip, (1.2, -0.6, 0.0))
    assert sim.position_um() == before_reading


def test_readout_noise_has_the_configured_spread(make_sim: Make) -> None:
    sim = make_sim(readout_noise_um=0.2)
    readings = np.array([sim.position_um() for _ in range(400)])
    assert float(readings.std(axis=0).mean()) == pytest.approx(0.2, rel=0.15)
    assert np.abs(readings.mean(axis=0) - 10000.0).max() < 0.05


def test_commands_take_effect_after_the_latency(make_sim: Make, sim_clock: SimClock) -> None:
    sim = make_sim(readout_noise_um=0.0, latency_ms=50.0)
    sim.move_by([100.0, 0.0, 0.0], 1000.0)
    sim_clock.advance(0.045)
    assert sim.position_um()[0] == 10000.0
    sim_clock.advance(0.02)
    assert sim.position_um()[0] > 10000.0


def test_fourth_axis_advances_along_the_pipette(make_sim: Make) -> None:
    sim = make_sim(
        readout_noise_um=0.0,
        n_axes=4,
        initial_position_um=(10000.0,) * 4,
        limits=((0.0,) * 4, (20000.0,) * 4),
        pitch_deg=30.0,
        yaw_deg=135.0,
    )
    assert sim.n_axes == 4 and len(sim.position_um()) == 4
    before = sim.true_tip_sample_um()
    assert sim.move_by([0.0, 0.0, 0.0, 40.0], 500.0).wait(2.0) is MoveStatus.FINISHED
    np.testing.assert_allclose(
        sim.true_tip_sample_um() - before, 40.0 * pipette_axis(30.0, 135.0), atol=1e-6
    )


def test_same_seed_same_run_and_different_seed_different_noise(log: EventLog) -> None:
    def run(seed: int) -> list[tuple[float, ...]]:
        clock = SimClock()
        sim = SimulatedManipulator.from_config(
            make_pipette(readout_noise_um=0.1, backlash_um=1.0), log=log, clock=clock, seed=seed
        )
        readings = []
        for step in ([30.0, 0.0, 0.0], [0.0, -20.0, 5.0], [-30.0, 20.0, -5.0]):
            sim.move_by(step, 700.0).wait(2.0)
            readings.append((*sim.position_um(), clock.now()))
        return readings

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_stop_mid_move_interrupts_and_brakes(make_sim: Make, sim_clock: SimClock) -> None:
    sim = make_sim(readout_noise_um=0.0)
    handle = sim.move_by([1000.0, 0.0, 0.0], 1000.0)
    sim_clock.advance(0.3)
    sim.stop()
    assert handle.status is MoveStatus.INTERRUPTED and handle.reason == "stopped"
    sim_clock.advance(0.2)
    assert not sim.is_busy()
    position = sim.position_um()[0]
    assert 10200.0 < position < 10400.0  # braked from 1000 µm/s at 20000 µm/s²


def test_a_new_move_supersedes_the_previous_one(make_sim: Make, sim_clock: SimClock) -> None:
    sim = make_sim(readout_noise_um=0.0)
    first = sim.move_by([500.0, 0.0, 0.0], 1000.0)
    sim_clock.advance(0.1)
    second = sim.move_to([10000.0, 10000.0, 10000.0], 1000.0)
    assert first.status is MoveStatus.INTERRUPTED
    assert "superseded" in first.reason
    assert second.wait(2.0) is MoveStatus.FINISHED
    np.testing.assert_allclose(sim.position_um(), (10000.0,) * 3, atol=1e-6)


@pytest.mark.parametrize(
    ("fault", "axis", "reason"),
    [
        (SimFault.LINK_LOST, 0, "link lost"),
        (SimFault.AXIS_STALL, 1, "axis 1 stalled"),
        (SimFault.POSITION_JUMP, 2, "position reading jumped"),
        (SimFault.LIMIT_SWITCH, 0, "limit switch hit (axis 0 high end)"),
    ],
)
def test_faults_mid_move_end_failed_with_a_reason_and_a_log_record(
    make_sim: Make, log: EventLog, sim_clock: SimClock, fault: SimFault, axis: int, reason: str
) -> None:
    sim = make_sim()
    sim.inject_fault(fault, after_s=0.1, axis=axis)
    handle = sim.move_by([300.0, 300.0, -300.0], 1000.0)
    assert handle.wait(5.0) is MoveStatus.FAILED
    assert reason in handle.reason
    assert sim_clock.now() < 1.5  # found out well before anyone's patience ran out
    faults = log.tail(kind="fault")
    assert faults and faults[-1]["message"] == "move failed" and reason in faults[-1]["reason"]


def test_busy_flag_stuck_fails_after_the_deadline(make_sim: Make, sim_clock: SimClock) -> None:
    sim = make_sim()
    sim.inject_fault(SimFault.BUSY_STUCK, after_s=0.05)
    handle = sim.move_by([100.0, 0.0, 0.0], 1000.0)
    assert handle.wait(5.0) is MoveStatus.FAILED
    assert handle.reason.startswith("busy flag stuck")
    assert handle.estimated_duration_s is not None
    assert sim_clock.now() == pytest.approx(1.5 * handle.estimated_duration_s + 0.5, abs=0.02)


def test_link_lost_makes_reads_and_stop_fail_clearly_until_restored(
    make_sim: Make, log: EventLog
) -> None:
    sim = make_sim()
    sim.inject_fault(SimFault.LINK_LOST)
    with pytest.raises(CommunicationError, match="link down"):
        sim.position_um()
    with pytest.raises(CommunicationError, match="link down"):
        sim.stop()
    messages = [e["message"] for e in log.tail(3)]
    assert messages == ["position read failed", "stop", "stop failed"]
    sim.true_tip_sample_um()  # the truth stays available to the camera
    sim.device.clear_faults()
    assert sim.move_by([10.0, 0.0, 0.0], 100.0).wait(2.0) is MoveStatus.FINISHED


def test_a_jump_while_idle_is_logged(make_sim: Make, log: EventLog) -> None:
    sim = make_sim()
    sim.position_um()
    sim.inject_fault(SimFault.POSITION_JUMP, axis=1, offset_um=(0.0, 30.0, 0.0))
    sim.position_um()
    assert log.tail(1)[0]["message"] == "position changed while idle"


def test_sim_rig_config_builds_four_deterministic_manipulators(log: EventLog) -> None:
    rig = load_config("configs/sim-4.yaml")
    clock = SimClock()
    manipulators = create_manipulators(rig, log=log, clock=clock)
    assert sorted(manipulators) == ["P1", "P2", "P3", "P4"]
    assert manipulators["P4"].n_axes == 4
    readings = {name: m.position_um() for name, m in manipulators.items()}
    assert len({r[:3] for r in readings.values()}) == 4  # noise differs per pipette
    again = create_manipulators(rig, log=log, clock=SimClock())
    assert {name: m.position_um() for name, m in again.items()} == readings


def test_real_hardware_refuses_a_simulated_clock(log: EventLog) -> None:
    rig = load_config("configs/scientifica-2.yaml")
    with pytest.raises(ValueError, match="real time"):
        create_manipulator(rig.pipettes[0], log=log, clock=SimClock())


def test_runs_in_real_time_under_the_real_clock(log: EventLog) -> None:
    clock = RealClock()
    sim = SimulatedManipulator.from_config(make_pipette(), log=log, clock=clock, seed=2)
    started = clock.now()
    handle = sim.move_by([50.0, 0.0, 0.0], 1000.0)
    assert handle.wait(2.0) is MoveStatus.FINISHED
    assert handle.estimated_duration_s is not None
    assert clock.now() - started >= handle.estimated_duration_s
