"""The Scientifica driver end to end: real pyserial on a pty, a simulated controller behind it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from patchpilot.config import PipetteConfig, ScientificaDriverConfig, SoftLimits
from patchpilot.events import EventLog
from patchpilot.hardware import CommunicationError, LimitError, MoveRefused, MoveStatus, SpeedError
from patchpilot.hardware.scientifica import ScientificaManipulator
from patchpilot.hardware.scientifica.simulator import ScientificaSimulator, running_simulator

LIMITS = SoftLimits(min_um=(-10000.0,) * 3, max_um=(10000.0,) * 3)


def _pipette(port: str, **driver: Any) -> PipetteConfig:
    return PipetteConfig(
        name="PS1",
        driver=ScientificaDriverConfig(port=port, timeout_s=0.2, **driver),
        pitch_deg=28.0,
        yaw_deg=90.0,
        soft_limits=LIMITS,
        max_speed_um_s=3000.0,
    )


@pytest.fixture
def sim() -> Iterator[ScientificaSimulator]:
    with running_simulator(version=3, baudrate=38400) as simulator:
        yield simulator


@pytest.fixture
def opened(sim: ScientificaSimulator, log: EventLog) -> Iterator[ScientificaManipulator]:
    manipulator = ScientificaManipulator.from_config(_pipette(sim.port, baudrate=38400), log=log)
    yield manipulator
    manipulator.close()


def _sent(sim: ScientificaSimulator, prefix: str) -> list[str]:
    return [command for command in sim.received if command.startswith(prefix)]


@pytest.mark.parametrize(
    ("version", "ticks"), [(2, "ABS 1000 -500 200"), (3, "ABS 10000 -5000 2000")]
)
def test_versions_use_their_own_ticks_and_speed_units(
    version: int, ticks: str, log: EventLog
) -> None:
    with running_simulator(version=version, baudrate=9600) as sim:
        manipulator = ScientificaManipulator.from_config(_pipette(sim.port), log=log)
        try:
            info = manipulator.identify()
            assert info.model == "Scientifica PatchStar" and info.n_axes == 3
            assert f"v{version}" in info.firmware
            handle = manipulator.move_to([100.0, -50.0, 20.0], 1000.0)
            assert handle.wait(5.0) is MoveStatus.FINISHED, handle.reason
            assert manipulator.position_um() == (100.0, -50.0, 20.0)
        finally:
            manipulator.close()
        assert ticks in sim.received
        top = "TOP 1000.0" if version == 3 else "TOP 12800"  # v2: µm/s x 2 x 6.4
        assert top in sim.received
        assert ("P" if version == 3 else "POS") in sim.received


def test_baud_detection_finds_38400_and_says_so(log: EventLog) -> None:
    with running_simulator(baudrate=38400) as sim:
        manipulator = ScientificaManipulator.from_config(_pipette(sim.port, baudrate=9600), log=log)
        try:
            assert manipulator.wire.transport.baudrate == 38400
            assert manipulator.position_um() == (0.0, 0.0, 0.0)
        finally:
            manipulator.close()
    messages = [e["message"] for e in log.tail(20)]
    assert "controller answered at 38400 baud, not the configured 9600" in messages


def test_nothing_answering_is_a_clear_error(sim: ScientificaSimulator, log: EventLog) -> None:
    sim.drop_next(10)
    with pytest.raises(CommunicationError, match=r"no Scientifica controller answered on .*9600"):
        ScientificaManipulator.from_config(_pipette(sim.port), log=log)


def test_a_missing_port_is_a_clear_error(log: EventLog) -> None:
    with pytest.raises(CommunicationError, match="cannot open serial port /dev/nonexistent"):
        ScientificaManipulator.from_config(_pipette("/dev/nonexistent"), log=log)


@pytest.mark.parametrize(
    ("target", "speed", "error"),
    [
        ([float("nan"), 0.0, 0.0], 100.0, MoveRefused),
        ([0.0, 0.0, 10001.0], 100.0, LimitError),
        ([0.0, 0.0, 10.0], 3001.0, SpeedError),
    ],
)
def test_refused_moves_put_nothing_on_the_wire(
    sim: ScientificaSimulator,
    opened: ScientificaManipulator,
    target: list[float],
    speed: float,
    error: type,
) -> None:
    with pytest.raises(error):
        opened.move_to(target, speed)
    assert _sent(sim, "ABS") == [] and _sent(sim, "TOP ") == []


def test_a_garbled_reply_is_retried(
    sim: ScientificaSimulator, opened: ScientificaManipulator
) -> None:
    sim.garble_next()
    assert opened.position_um() == (0.0, 0.0, 0.0)
    assert sim.received[-2:] == ["P", "P"]


def test_a_single_poll_timeout_does_not_kill_the_move(
    sim: ScientificaSimulator, opened: ScientificaManipulator, log: EventLog
) -> None:
    handle = opened.move_to([300.0, 0.0, 0.0], 1000.0)
    sim.drop_next(2)  # a poll and the wire's own retry of it: the watcher must carry on
    assert handle.wait(5.0) is MoveStatus.FINISHED, handle.reason
    assert [e["message"] for e in log.tail(50)].count("poll failed; retrying") == 1


def test_an_error_reply_to_the_move_fails_it(
    sim: ScientificaSimulator, opened: ScientificaManipulator, log: EventLog
) -> None:
    sim.error_next(4, count=2)  # the TOP and its retry
    with pytest.raises(CommunicationError, match="controller error 4"):
        opened.move_to([10.0, 0.0, 0.0], 500.0)
    assert opened.current_move is not None
    assert opened.current_move.status is MoveStatus.FAILED
    assert _sent(sim, "ABS") == []
    assert log.tail(1)[0]["message"] == "move command failed"


def test_disconnect_mid_move_fails_it_at_once(
    sim: ScientificaSimulator, opened: ScientificaManipulator
) -> None:
    handle = opened.move_to([2000.0, 0.0, 0.0], 1000.0)
    time.sleep(0.1)
    sim.disconnect()
    assert handle.wait(3.0) is MoveStatus.FAILED
    assert handle.reason.startswith("serial port disconnected")
    with pytest.raises(CommunicationError):
        opened.position_um()


def test_silence_mid_move_is_link_lost(
    sim: ScientificaSimulator, opened: ScientificaManipulator, log: EventLog
) -> None:
    handle = opened.move_to([2000.0, 0.0, 0.0], 1000.0)
    time.sleep(0.05)
    sim.drop_next(1000)
    assert handle.wait(5.0) is MoveStatus.FAILED
    assert handle.reason.startswith("link lost: no valid reply")
    assert log.tail(kind="fault")[-1]["message"] == "move failed"


def test_early_stopped_flag_is_rechecked(log: EventLog) -> None:
    with running_simulator(baudrate=38400, early_done_s=0.12) as sim:
        manipulator = ScientificaManipulator.from_config(_pipette(sim.port), log=log)
        try:
            handle = manipulator.move_to([400.0, 0.0, 0.0], 1000.0)
            assert handle.wait(5.0) is MoveStatus.FINISHED, handle.reason
            assert manipulator.position_um() == (400.0, 0.0, 0.0)
        finally:
            manipulator.close()
        assert len(_sent(sim, "ABS")) == 1  # patience, not a resend


def test_a_short_move_is_resent_then_failed_clearly(
    sim: ScientificaSimulator, opened: ScientificaManipulator
) -> None:
    sim.short_moves(1)
    handle = opened.move_to([100.0, 0.0, 0.0], 1000.0)
    assert handle.wait(5.0) is MoveStatus.FINISHED, handle.reason
    assert len(_sent(sim, "ABS")) == 2
    sim.short_moves(10, fraction=0.0)
    sim.limit_bits = 0b10  # X high end
    handle = opened.move_to([200.0, 0.0, 0.0], 1000.0)
    assert handle.wait(10.0) is MoveStatus.FAILED
    assert handle.reason == (
        "stopped 100.00 µm from the target after 3 attempts; limit switch engaged: X high"
    )


def test_slow_moves_go_stepwise(sim: ScientificaSimulator, opened: ScientificaManipulator) -> None:
    handle = opened.move_to([0.0, 8.0, 0.0], 20.0)  # below the 100 µm/s smooth minimum
    assert handle.wait(5.0) is MoveStatus.FINISHED, handle.reason
    assert handle.ended_s is not None and handle.ended_s - handle.started_s >= 0.4
    steps = _sent(sim, "ABS")
    assert len(steps) >= 4
    assert all(command == "TOP 100.0" for command in _sent(sim, "TOP ")[::2])
    assert opened.position_um() == (0.0, 8.0, 0.0)


def test_stop_interrupts_and_nothing_moves_after_it(
    sim: ScientificaSimulator, opened: ScientificaManipulator
) -> None:
    handle = opened.move_to([0.0, 30.0, 0.0], 20.0)  # stepwise: the watcher keeps sending
    time.sleep(0.3)
    opened.stop()
    assert handle.status is MoveStatus.INTERRUPTED
    time.sleep(0.3)
    last_stop = len(sim.received) - sim.received[::-1].index("STOP")
    assert not [c for c in sim.received[last_stop:] if c.startswith("ABS")]
    assert not opened.is_busy()


def test_relative_moves_are_never_repeated(
    sim: ScientificaSimulator, opened: ScientificaManipulator
) -> None:
    opened.wire.move_rel_um((5.0, 0.0, 0.0))
    time.sleep(0.2)
    assert opened.position_um() == (5.0, 0.0, 0.0)
    sim.drop_next(1)
    with pytest.raises(CommunicationError, match="no reply to 'REL 500 0 0'"):
        opened.wire.move_rel_um((5.0, 0.0, 0.0))
    assert len(_sent(sim, "REL")) == 2  # one each: a lost reply is not a licence to resend
    assert opened.wire.limit_switches() == 0


def test_the_factory_opens_a_scientifica(sim: ScientificaSimulator, log: EventLog) -> None:
    from patchpilot.clock import RealClock
    from patchpilot.hardware import create_manipulator

    manipulator = create_manipulator(_pipette(sim.port), log=log, clock=RealClock())
    try:
        assert isinstance(manipulator, ScientificaManipulator)
        assert manipulator.wire.version == pytest.approx(3.46)
    finally:
        manipulator.close()
