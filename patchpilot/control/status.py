"""What the panel sees: signals to subscribe to, and per-pipette status snapshots."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from psygnal import Signal, SignalGroup

from patchpilot.control.pipette_model import PipetteModel
from patchpilot.control.states import PipetteState

__all__ = ["ControllerSignals", "PipetteStatus", "pipette_status"]


class ControllerSignals(SignalGroup):
    """What the panel can subscribe to."""

    transition = Signal(str, str, str, str)  # who ("coordinator" or pipette), trigger, from, to
    fault = Signal(str, str)  # pipette, reason
    plans = Signal(str)  # readable plans of every pipette, after each (re)plan
    calibrated = Signal(str, str, float)  # pipette, verdict, rms residual (µm; nan if none)


@dataclass(frozen=True)
class PipetteStatus:
    """A snapshot of one pipette for the panel (sample frame, µm)."""

    name: str
    state: str
    position_um: tuple[float, float, float] | None
    target_um: tuple[float, float, float] | None
    distance_to_target_um: float | None
    last_correction_um: float | None
    corrections: int
    final_error_um: float | None
    calibration_residual_um: float | None
    needs_confirmation: bool
    uncertainty_um: float | None
    manual: bool
    fault: str
    paused_because: str
    waiting_for: str
    device_position_um: tuple[float, ...] | None = None
    """The manipulator's own reading (device axes, µm): known even before calibration."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _vector(value: Any) -> tuple[float, float, float] | None:
    if value is None:
        return None
    x, y, z = (float(v) for v in value)
    return (x, y, z)


def pipette_status(unit: PipetteModel) -> PipetteStatus:
    """A snapshot of ``unit`` (the caller holds the controller's lock)."""
    position = (
        unit.expected_tip_um() if unit.is_calibrated() and unit._reading is not None else None
    )
    target = unit.target_um
    distance = None
    if position is not None and target is not None:
        distance = float(np.linalg.norm(position - target))
    calibration = unit.calibration
    return PipetteStatus(
        name=unit.name,
        state=unit.state.value,
        position_um=_vector(position),
        target_um=_vector(target),
        distance_to_target_um=distance,
        last_correction_um=unit.last_correction_um,
        corrections=unit.corrections,
        final_error_um=unit.final_error_um,
        calibration_residual_um=calibration.rms_residual_um
        if calibration and calibration.manipulator_um.size
        else None,
        needs_confirmation=unit.pending_calibration is not None,
        uncertainty_um=unit.uncertainty_um() if calibration else None,
        manual=unit.state is PipetteState.MANUAL,
        fault=unit.fault_text,
        paused_because=unit.pause_reason,
        waiting_for=unit.waiting_for,
        device_position_um=unit.full_reading_um,
    )
