"""Fixtures for acquisition tests: a spot-drawing image source and a brightest-spot
localiser double (the localiser is not the subject here), a small fast simulated
microscope, and a guard that every test leaves no thread behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from patchpilot.acquisition.devices import RenderRequest
from patchpilot.acquisition.pycromanager_session import PycroManagerSession
from patchpilot.acquisition.simulated_acquisition import SimulatedAcquisition
from patchpilot.acquisition.simulated_microscope import SimulatedMicroscope
from patchpilot.config import MicroscopeConfig
from patchpilot.types import TipDetection

SHAPE_PX = (64, 96)
PROCESS_WIDE_THREADS = {"patchpilot-clock"}  # RealClock's one scheduler, started on first use


class SpotSource:
    """A bright 3x3 spot (peak at its centre) on Poisson noise, placed by ``position_px``."""

    def __init__(
        self,
        position_px: Callable[[RenderRequest], tuple[int, int]] | None = None,
        seed: int = 1,
    ) -> None:
        self._position_px = position_px or (lambda r: (10 + (r.frame_index * 7) % 70, 30))
        self._rng = np.random.default_rng(seed)

    def render(self, request: RenderRequest) -> NDArray[np.uint16]:
        image = self._rng.poisson(100.0, size=request.shape_px).astype(np.uint16)
        x, y = self._position_px(request)
        image[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2] = 2000
        image[y, x] = 4000  # the peak the localiser double finds
        return image


class BrightestSpotLocaliser:
    """Finds the brightest pixel; optionally slow (to make the hook skip frames)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls = 0

    def localise(self, image: NDArray[Any], pixel_size_um: float) -> list[TipDetection]:
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        y, x = np.unravel_index(int(np.argmax(image)), image.shape)
        if image[y, x] < 1000:
            return []
        return [
            TipDetection(
                x_px=float(x),
                y_px=float(y),
                x_um=float(x) * pixel_size_um,
                y_um=float(y) * pixel_size_um,
                confidence=0.9,
            )
        ]


@pytest.fixture(autouse=True)
def no_stray_threads() -> Iterator[None]:
    """Every test must end every thread it started (pycromanager's included)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        extra = [
            t
            for t in set(threading.enumerate()) - before
            if t.is_alive() and t.name not in PROCESS_WIDE_THREADS
        ]
        if not extra:
            return
        time.sleep(0.05)
    pytest.fail(f"threads left running: {sorted(t.name for t in extra)}")


@pytest.fixture
def microscope_config() -> MicroscopeConfig:
    return MicroscopeConfig(
        frame_width_px=SHAPE_PX[1], frame_height_px=SHAPE_PX[0], pixel_size_um=0.5
    )


@pytest.fixture
def microscope(microscope_config: MicroscopeConfig) -> Iterator[SimulatedMicroscope]:
    with SimulatedMicroscope(microscope_config, SpotSource(), real_time=False) as scope:
        yield scope


@pytest.fixture
def session(microscope: SimulatedMicroscope) -> Iterator[PycroManagerSession]:
    with PycroManagerSession(microscope.core) as opened:
        yield opened


@pytest.fixture
def recorded(tmp_path: Path, microscope_config: MicroscopeConfig) -> Path:
    """A 30-frame recording (NDTiff + event log) of SpotSource frames."""
    root = tmp_path / "run"
    with SimulatedAcquisition(
        microscope_config,
        BrightestSpotLocaliser(delay_s=0.004),
        source=SpotSource(),
        record_dir=root,
        real_time=False,
        focus_um=4.0,
        max_frames=30,
    ) as system:
        assert system.live.wait(20.0)
    return root
