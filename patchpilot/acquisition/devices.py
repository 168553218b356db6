"""Pure-Python Micro-Manager devices for the simulated microscope (pymmcore-plus unicore).

The camera asks an :class:`ImageSource` for the image of the sample as it is at the moment
of the snap (stage, focus, time); it knows nothing about pipettes or tissue. In real-time
mode it paces frames at the configured frame rate like a resonant scanner: a snap waits
for the next frame slot.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from pymmcore_plus.experimental.unicore import (
    ShutterDevice,
    SimpleCameraDevice,
    StageDevice,
    XYStageDevice,
)

if TYPE_CHECKING:
    from numpy.typing import DTypeLike, NDArray

__all__ = [
    "FocusDrive",
    "ImageSource",
    "NoiseImageSource",
    "RenderRequest",
    "SimulatedCamera",
    "SimulatedShutter",
    "SimulatedXYStage",
    "ViewState",
]


@dataclass(frozen=True)
class RenderRequest:
    """What the camera sees at one snap."""

    fov_center_um: tuple[float, float]
    """Sample (x, y) of the image centre: the XY stage position (µm)."""
    focus_um: float
    """Sample z of the focal plane: the focus drive position (µm)."""
    time_s: float
    """Seconds since the microscope started (tissue motion, drift)."""
    shape_px: tuple[int, int]
    """(height, width)."""
    pixel_size_um: float
    frame_index: int


class ImageSource(Protocol):
    """Renders one frame; called on the acquisition thread, so it must be quick."""

    def render(self, request: RenderRequest) -> NDArray[np.uint16]: ...


class NoiseImageSource:
    """Shot-noise background only: a stand-in while no scene renderer is wired."""

    def __init__(self, level: float = 200.0, seed: int | None = 0) -> None:
        self._level = level
        self._rng = np.random.default_rng(seed)

    def render(self, request: RenderRequest) -> NDArray[np.uint16]:
        image = self._rng.poisson(self._level, size=request.shape_px)
        return np.clip(image, 0, 65535).astype(np.uint16)


class ViewState:
    """What the stages and camera share: positions and the pixel size, thread-safe."""

    def __init__(self, xy_um: tuple[float, float], focus_um: float, pixel_size_um: float) -> None:
        self._lock = threading.Lock()
        self._xy_um = xy_um
        self._focus_um = focus_um
        self.pixel_size_um = pixel_size_um

    @property
    def xy_um(self) -> tuple[float, float]:
        with self._lock:
            return self._xy_um

    @xy_um.setter
    def xy_um(self, value: tuple[float, float]) -> None:
        with self._lock:
            self._xy_um = (float(value[0]), float(value[1]))

    @property
    def focus_um(self) -> float:
        with self._lock:
            return self._focus_um

    @focus_um.setter
    def focus_um(self, value: float) -> None:
        with self._lock:
            self._focus_um = float(value)


class SimulatedCamera(SimpleCameraDevice):
    """A two-photon "camera": uint16 frames from an :class:`ImageSource`.

    Parameters
    ----------
    source
        Renders each frame.
    view
        Stage and focus positions at the moment of the snap.
    shape_px
        (height, width) of the frame.
    frame_rate_hz
        Pace of frames in real-time mode.
    real_time
        False: frames as fast as they render (tests).
    """

    def __init__(
        self,
        source: ImageSource,
        view: ViewState,
        shape_px: tuple[int, int],
        frame_rate_hz: float,
        *,
        real_time: bool = True,
        exposure_ms: float = 33.0,
    ) -> None:
        super().__init__()
        self.source = source
        self._view = view
        self._shape_px = shape_px
        self._period_s = 1.0 / frame_rate_hz
        self.real_time = real_time
        self._exposure_ms = exposure_ms
        self._start_s = time.monotonic()
        self._last_frame_s: float | None = None
        self.frames_snapped = 0

    def sensor_shape(self) -> tuple[int, int]:
        return self._shape_px

    def dtype(self) -> DTypeLike:
        return np.uint16

    def get_exposure(self) -> float:
        return self._exposure_ms

    def set_exposure(self, exposure: float) -> None:
        self._exposure_ms = float(exposure)

    def _wait_for_slot(self) -> float:
        now = time.monotonic()
        if self.real_time and self._last_frame_s is not None:
            slot = self._last_frame_s + self._period_s
            if slot > now:
                time.sleep(slot - now)
                now = slot
        self._last_frame_s = now
        return now

    def snap(self, buffer: NDArray[Any]) -> Mapping[str, Any]:
        taken_s = self._wait_for_slot()
        request = RenderRequest(
            fov_center_um=self._view.xy_um,
            focus_um=self._view.focus_um,
            time_s=taken_s - self._start_s,
            shape_px=self._shape_px,
            pixel_size_um=self._view.pixel_size_um,
            frame_index=self.frames_snapped,
        )
        buffer[:] = self.source.render(request)
        self.frames_snapped += 1
        return {"patchpilot_time_s": f"{request.time_s:.6f}"}


class SimulatedXYStage(XYStageDevice):
    """An XY stage that moves instantly (the view follows)."""

    def __init__(self, view: ViewState) -> None:
        super().__init__()
        self._view = view

    def set_position_um(self, x: float, y: float) -> None:
        self._view.xy_um = (x, y)

    def get_position_um(self) -> tuple[float, float]:
        return self._view.xy_um

    def set_origin_x(self) -> None:
        self._view.xy_um = (0.0, self._view.xy_um[1])

    def set_origin_y(self) -> None:
        self._view.xy_um = (self._view.xy_um[0], 0.0)

    def home(self) -> None:
        self._view.xy_um = (0.0, 0.0)

    def stop(self) -> None:
        """Moves are instant: nothing to stop."""


class FocusDrive(StageDevice):
    """The objective's focus drive (µm, positive up), limited to a travel range."""

    def __init__(self, view: ViewState, limits_um: tuple[float, float]) -> None:
        super().__init__()
        self._view = view
        self._limits_um = limits_um

    def set_position_um(self, val: float) -> None:
        low, high = self._limits_um
        if not low <= val <= high:
            raise ValueError(f"focus {val:g} µm is outside the travel [{low:g}, {high:g}] µm")
        self._view.focus_um = val

    def get_position_um(self) -> float:
        return self._view.focus_um

    def set_origin(self) -> None:
        self._view.focus_um = 0.0

    def home(self) -> None:
        self._view.focus_um = 0.0

    def stop(self) -> None:
        """Moves are instant: nothing to stop."""


class SimulatedShutter(ShutterDevice):
    """The laser shutter (single snaps need a shutter device)."""

    def __init__(self) -> None:
        super().__init__()
        self._open = False

    def get_open(self) -> bool:
        return self._open

    def set_open(self, open: bool) -> None:
        self._open = bool(open)
