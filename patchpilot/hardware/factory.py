"""Build manipulators from the rig configuration (the only place that picks a backend)."""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import numpy as np

from patchpilot.clock import Clock, RealClock
from patchpilot.config import (
    PipetteConfig,
    RigConfig,
    ScientificaDriverConfig,
    SensapexDriverConfig,
    SimulatedDriverConfig,
)
from patchpilot.hardware._protocol import Manipulator

if TYPE_CHECKING:
    from patchpilot.events import EventLog

__all__ = ["create_manipulator", "create_manipulators", "pipette_seed"]


def pipette_seed(rng_seed: int | None, name: str) -> int | None:
    """A per-pipette seed derived from the rig's seed and the pipette's name.

    Pipettes sharing one rig seed must not share noise sequences.
    """
    if rng_seed is None:
        return None
    sequence = np.random.SeedSequence([rng_seed, zlib.crc32(name.encode("utf-8"))])
    return int(sequence.generate_state(1)[0])


def create_manipulator(
    pipette: PipetteConfig,
    *,
    log: EventLog,
    clock: Clock,
    rng_seed: int | None = None,
) -> Manipulator:
    """The manipulator for one pipette, chosen by ``pipette.driver.kind``.

    Parameters
    ----------
    pipette
        Its driver settings, soft limits and maximum speed are used.
    log
        Where commands and faults are recorded.
    clock
        ``SimClock`` only for simulated devices; real devices need ``RealClock``.
    rng_seed
        Seed of a simulated device's noise (derived per pipette name).

    Raises
    ------
    ValueError
        A simulated clock for a real device, or a simulated device whose configuration does
        not fit together.
    patchpilot.hardware.ManipulatorError
        A real device could not be reached or identified.
    """
    driver = pipette.driver
    if isinstance(driver, SimulatedDriverConfig):
        from patchpilot.hardware.simulated import SimulatedManipulator

        return SimulatedManipulator.from_config(
            pipette, log=log, clock=clock, seed=pipette_seed(rng_seed, pipette.name)
        )
    if not isinstance(clock, RealClock):
        raise ValueError(
            f"{pipette.name}: a {driver.kind} manipulator is real hardware and runs in real "
            f"time; pass a RealClock (got {type(clock).__name__})"
        )
    if isinstance(driver, SensapexDriverConfig):
        from patchpilot.hardware.sensapex import SensapexManipulator

        return SensapexManipulator.from_config(pipette, log=log, clock=clock)
    if isinstance(driver, ScientificaDriverConfig):
        from patchpilot.hardware.scientifica import ScientificaManipulator

        return ScientificaManipulator.from_config(pipette, log=log, clock=clock)
    raise ValueError(f"{pipette.name}: unknown driver kind {driver.kind!r}")


def create_manipulators(rig: RigConfig, *, log: EventLog, clock: Clock) -> dict[str, Manipulator]:
    """Every pipette's manipulator, by pipette name (seeded from ``rig.simulation_seed``).

    If one device cannot be opened, those already opened are closed and the error propagates.
    """
    manipulators: dict[str, Manipulator] = {}
    try:
        for pipette in rig.pipettes:
            manipulators[pipette.name] = create_manipulator(
                pipette, log=log, clock=clock, rng_seed=rig.simulation_seed
            )
    except BaseException:
        for manipulator in manipulators.values():
            manipulator.close()
        raise
    return manipulators
