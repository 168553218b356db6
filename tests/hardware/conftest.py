"""Fixtures for the hardware tests: clocks, logs and pipette configurations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from patchpilot.clock import SimClock
from patchpilot.config import PipetteConfig, SimulatedDriverConfig, SoftLimits
from patchpilot.events import EventLog
from patchpilot.hardware.simulated import SimulatedManipulator

PipetteFactory = Callable[..., PipetteConfig]


@pytest.fixture
def log() -> EventLog:
    return EventLog()


@pytest.fixture
def sim_clock() -> SimClock:
    return SimClock()


def make_pipette(
    name: str = "P1",
    *,
    limits: tuple[tuple[float, ...], tuple[float, ...]] = ((0.0, 0.0, 0.0), (20000.0,) * 3),
    max_speed_um_s: float = 2000.0,
    pitch_deg: float = 30.0,
    yaw_deg: float = 45.0,
    **driver: Any,
) -> PipetteConfig:
    """A pipette on a simulated manipulator; ``driver`` overrides SimulatedDriverConfig."""
    return PipetteConfig(
        name=name,
        driver=SimulatedDriverConfig(**driver),
        pitch_deg=pitch_deg,
        yaw_deg=yaw_deg,
        soft_limits=SoftLimits(min_um=limits[0], max_um=limits[1]),
        max_speed_um_s=max_speed_um_s,
        fast_speed_um_s=min(1000.0, max_speed_um_s),
    )


@pytest.fixture
def make_sim(log: EventLog, sim_clock: SimClock) -> Callable[..., SimulatedManipulator]:
    """Build a simulated manipulator on the test's SimClock and log."""

    def build(seed: int | None = 1, **kwargs: Any) -> SimulatedManipulator:
        return SimulatedManipulator.from_config(
            make_pipette(**kwargs), log=log, clock=sim_clock, seed=seed
        )

    return build
