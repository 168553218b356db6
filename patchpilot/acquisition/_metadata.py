"""Where and how a frame was taken, read from whichever metadata dialect delivered it.

Three dialects reach the hook: pycromanager's Python backend (``PixelSize_um``,
``X/Y/ZPosition_um_Intended`` when the event set them), its Java backend (``PixelSizeUm``,
``XPositionUm``...) and pymmcore-plus ``frameReady`` (``pixel_size_um``, ``position``,
``mda_event``). Positions the metadata does not carry are read from the core.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol

__all__ = [
    "CorePositionReader",
    "PositionReader",
    "focus_from_metadata",
    "pixel_size_from_metadata",
    "xy_from_metadata",
]


class PositionReader(Protocol):
    """Reads the microscope's current XY stage and focus positions (µm)."""

    def xy_um(self) -> tuple[float, float]: ...

    def focus_um(self) -> float: ...


def _first_call(target: Any, names: tuple[str, ...]) -> Any:
    for name in names:
        method = getattr(target, name, None)
        if callable(method):
            return method()
    raise AttributeError(f"{type(target).__name__} has none of {', '.join(names)}")


class CorePositionReader:
    """Positions from a Micro-Manager core: pymmcore/pymmcore-plus (camelCase) or
    pycromanager's Java ``Core`` proxy (snake_case). A core without an XY stage or focus
    device reads as 0.0 on that axis.
    """

    def __init__(self, core: Any) -> None:
        self._core = core

    def _device(self, camel: str, snake: str) -> str:
        return str(_first_call(self._core, (camel, snake)))

    def xy_um(self) -> tuple[float, float]:
        if not self._device("getXYStageDevice", "get_xy_stage_device"):
            return (0.0, 0.0)
        x = float(_first_call(self._core, ("getXPosition", "get_x_position")))
        y = float(_first_call(self._core, ("getYPosition", "get_y_position")))
        return (x, y)

    def focus_um(self) -> float:
        if not self._device("getFocusDevice", "get_focus_device"):
            return 0.0
        return float(_first_call(self._core, ("getPosition", "get_position")))


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def pixel_size_from_metadata(metadata: Mapping[str, Any]) -> float | None:
    """Pixel size (µm) from ``PixelSize_um``, ``PixelSizeUm`` or ``pixel_size_um``.

    Returns None when none is present, or when it is not a positive finite number (an
    uncalibrated objective reports 0).
    """
    for key in ("PixelSize_um", "PixelSizeUm", "pixel_size_um"):
        if key in metadata:
            value = _number(metadata[key])
            if value is not None and value > 0:
                return value
    return None


def _mda_position(metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    position = metadata.get("position")
    return position if isinstance(position, Mapping) else {}


def xy_from_metadata(metadata: Mapping[str, Any]) -> tuple[float, float] | None:
    """XY stage position (µm) the metadata records for this frame, or None."""
    position = _mda_position(metadata)
    pairs = (
        (position.get("x"), position.get("y")),
        (metadata.get("XPositionUm"), metadata.get("YPositionUm")),
        (metadata.get("XPosition_um_Intended"), metadata.get("YPosition_um_Intended")),
    )
    for raw_x, raw_y in pairs:
        x, y = _number(raw_x), _number(raw_y)
        if x is not None and y is not None:
            return (x, y)
    event = metadata.get("mda_event")
    x, y = _number(getattr(event, "x_pos", None)), _number(getattr(event, "y_pos", None))
    return (x, y) if x is not None and y is not None else None


def focus_from_metadata(metadata: Mapping[str, Any]) -> float | None:
    """Focus position (µm) the metadata records for this frame, or None."""
    for raw in (
        _mda_position(metadata).get("z"),
        metadata.get("ZPositionUm"),
        metadata.get("ZPosition_um_Intended"),
        getattr(metadata.get("mda_event"), "z_pos", None),
    ):
        value = _number(raw)
        if value is not None:
            return value
    return None
