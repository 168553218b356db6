"""The bodies of the panel's commands, validated by pydantic before anything moves.

NaN and infinities are refused (``allow_inf_nan=False``), unknown fields too
(``extra="forbid"``), and every number has bounds; the controller then checks what depends on
the rig (soft limits, speeds, clearance).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from patchpilot.panel._protocol import JogAxis

__all__ = ["MAX_JOG_STEP_UM", "MAX_SPEED_UM_S", "JogRequest", "TargetRequest", "ZoneRequest"]

MAX_JOG_STEP_UM = 500.0
"""Largest single jog the panel accepts (µm); the controller applies its own limit too."""
MAX_SPEED_UM_S = 10_000.0
"""Fastest speed the panel accepts (µm/s); each pipette's ``max_speed_um_s`` applies too."""
_MAX_COORDINATE_UM = 1e5
_MAX_COORDINATE_PX = 1e5


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class JogRequest(_Command):
    """Move a manual pipette along one axis."""

    axis: JogAxis
    step_um: float = Field(ge=-MAX_JOG_STEP_UM, le=MAX_JOG_STEP_UM)
    """Signed step (µm); along ``pipette``, positive advances toward the tip."""
    speed_um_s: float = Field(gt=0.0, le=MAX_SPEED_UM_S)

    @model_validator(mode="after")
    def _check_step(self) -> JogRequest:
        if self.step_um == 0.0:
            raise ValueError("step_um must not be zero")
        return self


class TargetRequest(_Command):
    """A target in the sample frame (µm), or a point clicked on the image (pixels).

    With pixels, ``z_um`` defaults to the focus of the frame shown.
    """

    x_um: float | None = Field(default=None, ge=-_MAX_COORDINATE_UM, le=_MAX_COORDINATE_UM)
    y_um: float | None = Field(default=None, ge=-_MAX_COORDINATE_UM, le=_MAX_COORDINATE_UM)
    z_um: float | None = Field(default=None, ge=-_MAX_COORDINATE_UM, le=_MAX_COORDINATE_UM)
    x_px: float | None = Field(default=None, ge=-_MAX_COORDINATE_PX, le=_MAX_COORDINATE_PX)
    y_px: float | None = Field(default=None, ge=-_MAX_COORDINATE_PX, le=_MAX_COORDINATE_PX)

    @model_validator(mode="after")
    def _check_one_kind(self) -> TargetRequest:
        sample = (self.x_um, self.y_um)
        pixels = (self.x_px, self.y_px)
        if all(v is not None for v in pixels) and all(v is None for v in sample):
            return self
        if all(v is not None for v in (*sample, self.z_um)) and all(v is None for v in pixels):
            return self
        raise ValueError("give either x_um, y_um and z_um, or x_px and y_px (and maybe z_um)")

    @property
    def is_pixels(self) -> bool:
        return self.x_px is not None


class ZoneRequest(_Command):
    """A vertical cylinder to avoid, drawn on the image (pixels) or typed (µm)."""

    kind: Literal["cylinder"] = "cylinder"
    name: str = Field(default="drawn", min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    center_xy_um: tuple[float, float] | None = None
    radius_um: float | None = Field(default=None, gt=0.0, le=5000.0)
    center_px: tuple[float, float] | None = None
    radius_px: float | None = Field(default=None, gt=0.0, le=_MAX_COORDINATE_PX)
    z_min_um: float = Field(default=-1e4, ge=-_MAX_COORDINATE_UM, le=_MAX_COORDINATE_UM)
    z_max_um: float = Field(default=1e4, ge=-_MAX_COORDINATE_UM, le=_MAX_COORDINATE_UM)

    @model_validator(mode="after")
    def _check_one_kind(self) -> ZoneRequest:
        in_um = self.center_xy_um is not None and self.radius_um is not None
        in_px = self.center_px is not None and self.radius_px is not None
        if in_um == in_px or (in_um and (self.center_px or self.radius_px)):
            raise ValueError("give either center_xy_um and radius_um, or center_px and radius_px")
        if in_px and (self.center_xy_um is not None or self.radius_um is not None):
            raise ValueError("give either center_xy_um and radius_um, or center_px and radius_px")
        for value in (*(self.center_xy_um or ()), *(self.center_px or ())):
            if abs(value) > _MAX_COORDINATE_UM:
                raise ValueError(f"zone centre coordinate {value} is out of range")
        if self.z_min_um >= self.z_max_um:
            raise ValueError(f"z_min_um {self.z_min_um} must be below z_max_um {self.z_max_um}")
        return self
