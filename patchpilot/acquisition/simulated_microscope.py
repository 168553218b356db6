"""The simulated microscope: a pymmcore-plus ``UniMMCore`` with pure-Python devices.

The same core serves a real pycromanager acquisition (through
:class:`~patchpilot.acquisition.pycromanager_session.PycroManagerSession`) and a
pymmcore-plus MDA; nothing above the devices knows it is simulated.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import weakref
from typing import Any

from patchpilot.acquisition.devices import (
    FocusDrive,
    ImageSource,
    NoiseImageSource,
    SimulatedCamera,
    SimulatedShutter,
    SimulatedXYStage,
    ViewState,
)
from patchpilot.acquisition.pycromanager_session import release_core_callbacks
from patchpilot.config import MicroscopeConfig

__all__ = ["CAMERA", "SHUTTER", "SimulatedMicroscope"]

CAMERA = "Camera"
SHUTTER = "Shutter"
_PIXEL_CONFIG = "Res-sim"


class SimulatedMicroscope:
    """A ``UniMMCore`` loaded with the simulated camera, XY stage, focus drive and shutter.

    Parameters
    ----------
    config
        Frame size, pixel size, frame rate, device labels, focus travel and stage start.
    source
        Renders frames; None: noise only (until a scene is wired).
    real_time
        Pace frames at ``config.frame_rate_hz`` (False: as fast as they render).
    exposure_ms
        Reported exposure (the pacing comes from the frame rate).
    """

    def __init__(
        self,
        config: MicroscopeConfig | None = None,
        source: ImageSource | None = None,
        *,
        real_time: bool = True,
        exposure_ms: float = 33.0,
    ) -> None:
        from pymmcore_plus.experimental.unicore import UniMMCore

        self.config = config if config is not None else MicroscopeConfig()
        cfg = self.config
        self.view = ViewState(cfg.stage_position_um, 0.0, cfg.pixel_size_um)
        self.camera = SimulatedCamera(
            source if source is not None else NoiseImageSource(),
            self.view,
            (cfg.frame_height_px, cfg.frame_width_px),
            cfg.frame_rate_hz,
            real_time=real_time,
            exposure_ms=exposure_ms,
        )
        # UniMMCore warns that no C++ Micro-Manager is installed; pure-Python devices
        # need none.
        logger = logging.getLogger("pymmcore-plus")
        previous = logger.level
        logger.setLevel(logging.CRITICAL)
        try:
            self.core: Any = UniMMCore()
        finally:
            logger.setLevel(previous)
        core = self.core
        core.loadPyDevice(CAMERA, self.camera)
        core.loadPyDevice(cfg.xy_stage_device, SimulatedXYStage(self.view))
        core.loadPyDevice(cfg.focus_device, FocusDrive(self.view, cfg.focus_limits_um))
        core.loadPyDevice(SHUTTER, SimulatedShutter())
        core.initializeAllDevices()
        core.setCameraDevice(CAMERA)
        core.setXYStageDevice(cfg.xy_stage_device)
        core.setFocusDevice(cfg.focus_device)
        core.setShutterDevice(SHUTTER)
        core.setExposure(exposure_ms)
        core.definePixelSizeConfig(_PIXEL_CONFIG)
        core.setPixelSizeUm(_PIXEL_CONFIG, cfg.pixel_size_um)
        core.setPixelSizeConfig(_PIXEL_CONFIG)
        self._closed = False
        # Also when nobody closes it (a crash, a forgotten close): no C++ callback into a
        # dying interpreter.
        atexit.register(_release_at_exit, weakref.ref(core))

    @property
    def source(self) -> ImageSource:
        return self.camera.source

    @source.setter
    def source(self, value: ImageSource) -> None:
        self.camera.source = value

    @property
    def real_time(self) -> bool:
        return self.camera.real_time

    @real_time.setter
    def real_time(self, value: bool) -> None:
        self.camera.real_time = value

    def close(self) -> None:
        """Unload the devices and release the core's C++ callback (idempotent)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self.core.unloadAllDevices()
        release_core_callbacks(self.core)

    def __enter__(self) -> SimulatedMicroscope:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _release_at_exit(core_ref: weakref.ReferenceType[Any]) -> None:
    core = core_ref()
    if core is not None:
        release_core_callbacks(core)
