"""Validation helpers shared by the scene's value types; errors name the field and value."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["SceneError"]


class SceneError(ValueError):
    """A scene parameter that cannot be rendered; the message names the field and value."""


def _finite(owner: str, name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SceneError(f"{owner}.{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise SceneError(f"{owner}.{name} must be finite, got {value!r}")
    return number


def _in_range(
    owner: str, name: str, value: Any, low: float, high: float, *, open_low: bool = False
) -> float:
    number = _finite(owner, name, value)
    below = number <= low if open_low else number < low
    if below or number > high:
        bracket = "(" if open_low else "["
        raise SceneError(f"{owner}.{name} must be in {bracket}{low:g}, {high:g}], got {value!r}")
    return number


def _vector(owner: str, name: str, value: Any, size: int) -> tuple[float, ...]:
    try:
        items = tuple(value)
    except TypeError:
        raise SceneError(f"{owner}.{name} must be {size} numbers, got {value!r}") from None
    if len(items) != size:
        raise SceneError(f"{owner}.{name} must be {size} numbers, got {len(items)}: {value!r}")
    return tuple(_finite(owner, name, v) for v in items)


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)  # normalise fields of a frozen dataclass
