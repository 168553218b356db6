"""The Sensapex driver over the REAL sensapex SDK classes, with a simulated ``libum.so``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from patchpilot.clock import RealClock
from patchpilot.config import PipetteConfig, SensapexDriverConfig, SoftLimits
from patchpilot.events import EventLog
from patchpilot.hardware import (
    CommunicationError,
    LimitError,
    MoveRefused,
    MoveStatus,
    SpeedError,
    stop_all,
)
from patchpilot.hardware.sensapex import SensapexManipulator
from patchpilot.hardware.sensapex_sim import SimulatedLibum, SimulatedUmp, simulated_ump

LIMITS_3 = SoftLimits(min_um=(500.0,) * 3, max_um=(19500.0,) * 3)
LIMITS_4 = SoftLimits(min_um=(500.0,) * 4, max_um=(19500.0,) * 4)


def _pipette(device_id: int, limits: SoftLimits = LIMITS_3, **driver: Any) -> PipetteConfig:
    return PipetteConfig(
        name=f"ump{device_id}",
        driver=SensapexDriverConfig(device_id=device_id, command_timeout_s=0.3, **driver),
        pitch_deg=30.0,
        yaw_deg=0.0,
        soft_limits=limits,
    )


@pytest.fixture
def lib() -> SimulatedLibum:
    return SimulatedLibum(
        [
            SimulatedUmp(1),
            SimulatedUmp(2),
            SimulatedUmp(3, n_axes=4, reported_axes=3),
            SimulatedUmp(4, n_axes=4),
        ]
    )


@pytest.fixture
def ump(lib: SimulatedLibum) -> Iterator[Any]:
    with simulated_ump(lib) as opened:
        yield opened


def _open(ump: Any, log: EventLog, device_id: int, **kwargs: Any) -> SensapexManipulator:
    return SensapexManipulator.from_config(
        _pipette(device_id, **kwargs), log=log, clock=RealClock(), ump=ump
    )


def test_identify_read_and_move_through_the_sdk(
    ump: Any, lib: SimulatedLibum, log: EventLog
) -> None:
    manipulator = _open(ump, log, 1)
    info = manipulator.identify()
    assert (info.model, info.firmware, info.n_axes) == ("Sensapex uMp-3", "4.2.1.0.0", 3)
    assert manipulator.position_um() == (10000.0, 10000.0, 10000.0)
    handle = manipulator.move_to([10060.0, 9980.0, 10000.0], 1000.0)
    assert handle.wait(3.0) is MoveStatus.FINISHED, handle.reason
    assert manipulator.position_um() == pytest.approx((10060.0, 9980.0, 10000.0), abs=0.01)
    assert lib.called("um_goto_position_ext") == 1
    assert not manipulator.is_busy()


@pytest.mark.parametrize(
    ("target", "speed", "error"),
    [
        ([10000.0, 10000.0, 10100.0], 0.5, SpeedError),  # < 1 µm/s crashes a uMp
        ([10000.0, float("nan"), 10000.0], 100.0, MoveRefused),
        ([10000.0, 10000.0, 19600.0], 100.0, LimitError),
        ([10000.0, 10000.0, 10100.0], 5000.0, SpeedError),
    ],
)
def test_refused_moves_never_reach_the_library(
    ump: Any, lib: SimulatedLibum, log: EventLog, target: list[float], speed: float, error: type
) -> None:
    manipulator = _open(ump, log, 1)
    with pytest.raises(error):
        manipulator.move_to(target, speed)
    assert lib.called("um_goto_position_ext") == 0
    assert log.tail(1)[0]["message"] == "move refused"


def test_sdk_bug_failed_3_axis_move_never_sets_its_event(ump: Any, lib: SimulatedLibum) -> None:
    """The simulation is faithful: the real SDK code hangs on this (sensapex 1.504.3 bug 1)."""
    lib.devices[1].stalled_axis = 1
    request = ump.get_device(1).goto_pos([10000.0, 10100.0, 10000.0], 1000.0)
    assert not request.finished_event.wait(timeout=1.5)
    assert request.attempts == request.max_attempts  # it gave up, silently
    ump.stop(1)


def test_failed_3_axis_move_ends_failed_at_the_deadline(
    ump: Any, lib: SimulatedLibum, log: EventLog
) -> None:
    manipulator = _open(ump, log, 1)
    lib.devices[1].stalled_axis = 1
    started = time.monotonic()
    handle = manipulator.move_to([10000.0, 10100.0, 10000.0], 1000.0)
    assert handle.wait(5.0) is MoveStatus.FAILED
    assert "no completion" in handle.reason and "never signalled completion" in handle.reason
    assert time.monotonic() - started < 3.0
    assert log.tail(kind="fault")[-1]["message"] == "move failed"


def test_failed_4_axis_move_reports_the_sdk_reason(
    ump: Any, lib: SimulatedLibum, log: EventLog
) -> None:
    manipulator = _open(ump, log, 4, limits=LIMITS_4)
    lib.devices[4].stalled_axis = 0
    handle = manipulator.move_by([80.0, 0.0, 0.0, 0.0], 1000.0)
    assert handle.wait(5.0) is MoveStatus.FAILED
    assert "did not reach target" in handle.reason


def test_link_drop_mid_move_is_link_lost_though_the_sdk_says_not_busy(
    ump: Any, lib: SimulatedLibum, log: EventLog
) -> None:
    manipulator = _open(ump, log, 2)
    handle = manipulator.move_by([2000.0, 0.0, 0.0], 1000.0)
    time.sleep(0.1)
    lib.devices[2].link_lost = True
    assert ump.is_busy(2) is False  # sensapex 1.504.3 bug 2: a silent device "is not busy"
    assert handle.wait(3.0) is MoveStatus.FAILED
    assert handle.reason.startswith("link lost: device 2 has not answered")
    assert "Timeout" in handle.reason
    with pytest.raises(CommunicationError, match="drive status failed"):
        manipulator.is_busy()
    faults = [e["message"] for e in log.tail(kind="fault")]
    assert "move failed" in faults and "busy query failed" in faults


def test_a_single_timeout_is_retried_and_a_dead_device_is_reported(
    ump: Any, lib: SimulatedLibum, log: EventLog
) -> None:
    manipulator = _open(ump, log, 1)
    lib.devices[1].drop_calls = 1
    assert manipulator.position_um() == (10000.0, 10000.0, 10000.0)
    lib.devices[1].link_lost = True
    with pytest.raises(CommunicationError, match=r"position read failed .*Timeout"):
        manipulator.position_um()
    assert log.tail(1)[0]["message"] == "position read failed"


def test_ump4_detected_as_3_axes_and_the_override(
    ump: Any, lib: SimulatedLibum, log: EventLog
) -> None:
    detected = _open(ump, log, 3)
    assert detected.n_axes == 3 and len(detected.position_um()) == 3
    forced = _open(ump, log, 3, limits=LIMITS_4, n_axes=4)
    assert forced.n_axes == 4 and len(forced.position_um()) == 4
    handle = forced.move_by([0.0, 0.0, 0.0, 50.0], 500.0)
    assert handle.wait(3.0) is MoveStatus.FINISHED, handle.reason
    assert lib.devices[3].positions(time.monotonic())[3] == pytest.approx(10050.0)


def test_stop_mid_move_interrupts(ump: Any, lib: SimulatedLibum, log: EventLog) -> None:
    manipulator = _open(ump, log, 1)
    handle = manipulator.move_by([3000.0, 0.0, 0.0], 1000.0)
    time.sleep(0.2)
    manipulator.stop()
    assert handle.status is MoveStatus.INTERRUPTED
    assert not manipulator.is_busy()
    assert 10000.0 < manipulator.position_um()[0] < 13000.0


def test_a_new_move_supersedes_the_old_one(ump: Any, log: EventLog) -> None:
    manipulator = _open(ump, log, 1)
    first = manipulator.move_by([3000.0, 0.0, 0.0], 1000.0)
    time.sleep(0.1)
    second = manipulator.move_to([10000.0, 10000.0, 10000.0], 1000.0)
    assert first.status is MoveStatus.INTERRUPTED
    assert second.wait(3.0) is MoveStatus.FINISHED, second.reason


def test_stop_all_reaches_every_device_when_one_is_unreachable(
    ump: Any, lib: SimulatedLibum, log: EventLog
) -> None:
    manipulators = [_open(ump, log, i) for i in (1, 2)] + [_open(ump, log, 4, limits=LIMITS_4)]
    moves = [m.move_by([3000.0, 0.0, 0.0], 1000.0) for m in manipulators]
    time.sleep(0.1)
    lib.devices[2].link_lost = True
    results = stop_all(manipulators, timeout_s=3.0)
    assert results["ump1"] is None and results["ump4"] is None
    assert results["ump2"] is not None and "um_stop_all broadcast sent" in results["ump2"]
    assert lib.called("um_stop_all") == 1  # sensapex has no wrapper; called through UMP.call
    assert moves[0].status is MoveStatus.INTERRUPTED and moves[2].status is MoveStatus.INTERRUPTED
    assert moves[1].status is MoveStatus.FAILED
    now = time.monotonic()
    assert lib.devices[1].drive_status(now) == 0 and lib.devices[4].drive_status(now) == 0


def test_an_absent_device_id_is_a_clear_error(ump: Any, log: EventLog) -> None:
    with pytest.raises(CommunicationError, match=r"no Sensapex device 9 answered .*found: \[1, 2"):
        _open(ump, log, 9)


def test_the_factory_opens_a_sensapex_through_the_sdk_singleton(ump: Any, log: EventLog) -> None:
    from patchpilot.hardware import create_manipulator

    manipulator = create_manipulator(_pipette(2), log=log, clock=RealClock())
    assert isinstance(manipulator, SensapexManipulator)
    assert manipulator.min_speed_um_s == 1.0 and manipulator.n_axes == 3
