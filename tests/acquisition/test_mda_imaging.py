"""The pymmcore-plus path and focus snaps (Imaging) over both live acquisitions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from patchpilot.acquisition._metadata import CorePositionReader
from patchpilot.acquisition.hook import FrameHook
from patchpilot.acquisition.imaging import Imaging
from patchpilot.acquisition.live import LiveAcquisition
from patchpilot.acquisition.mda import MDALiveAcquisition, connect_mda
from patchpilot.acquisition.pycromanager_session import PycroManagerSession
from patchpilot.acquisition.simulated_microscope import SimulatedMicroscope

from .conftest import BrightestSpotLocaliser, SpotSource


def focus_spot_scope(config: Any) -> SimulatedMicroscope:
    # The spot's column shows the focus the frame was really taken at: x = 20 + focus.
    source = SpotSource(lambda r: (round(20 + r.focus_um), 30))
    return SimulatedMicroscope(config, source, real_time=False)


def make_hook(scope: SimulatedMicroscope) -> FrameHook:
    return FrameHook(BrightestSpotLocaliser(), positions=CorePositionReader(scope.core))


def test_mda_path_feeds_the_same_hook(microscope: SimulatedMicroscope) -> None:
    hook = make_hook(microscope)
    indices: list[int] = []
    hook.subscribe(lambda frame, detections: indices.append(frame.index))
    live = MDALiveAcquisition(microscope.core, hook, max_frames=25, focus_um=3.0)
    live.start()
    assert live.wait(20.0)
    live.stop()
    assert hook.stats.frames_seen == 25 == microscope.camera.frames_snapped
    assert hook.stats.frames_rejected == 0 and indices[-1] == 24
    assert hook.stats.frames_localised + hook.stats.frames_skipped == 25


def test_connect_mda_on_a_plain_sequence(microscope: SimulatedMicroscope) -> None:
    from useq import MDASequence

    hook = make_hook(microscope)
    frames: list[Any] = []
    hook.subscribe(lambda frame, detections: frames.append(frame))
    disconnect = connect_mda(microscope.core, hook)
    with hook:
        microscope.core.mda.run(MDASequence(time_plan={"interval": 0, "loops": 4}))
    disconnect()
    assert hook.stats.frames_seen == 4
    assert frames[-1].pixel_size_um == 0.5  # from pymmcore-plus's pixel_size_um
    microscope.core.mda.run(MDASequence(time_plan={"interval": 0, "loops": 2}))
    assert hook.stats.frames_seen == 4  # disconnected


@pytest.fixture(params=["pycromanager", "pymmcore-plus"])
def running(request: Any, microscope_config: Any) -> Iterator[tuple[Imaging, Any]]:
    with focus_spot_scope(microscope_config) as scope:
        hook = make_hook(scope)
        if request.param == "pycromanager":
            with PycroManagerSession(scope.core) as session:
                live: Any = LiveAcquisition(session, hook, focus_um=0.0)
                live.start()
                imaging = Imaging(live, focus_limits_um=(-50.0, 50.0))
                yield imaging, live
                imaging.close()
                live.stop()
        else:
            live = MDALiveAcquisition(scope.core, hook, focus_um=0.0)
            live.start()
            imaging = Imaging(live, focus_limits_um=(-50.0, 50.0))
            yield imaging, live
            imaging.close()
            live.stop()


def test_snap_returns_a_fresh_frame_at_the_requested_focus(running: Any) -> None:
    imaging, _ = running
    for focus in (10.0, -15.0, 30.0, 30.0):
        frame, detections = imaging.snap(focus)
        assert frame.focus_um == focus
        assert detections[0].x_px == 20 + focus  # the image really was taken there
    assert imaging.focus_um == 30.0
    first, _ = imaging.snap()
    second, _ = imaging.snap()
    assert second.index > first.index


def test_snap_refuses_bad_focus_and_times_out_when_stopped(running: Any) -> None:
    imaging, live = running
    imaging.snap(5.0)
    for bad in (float("nan"), 80.0, -51.0):
        with pytest.raises(ValueError, match="focus"):
            imaging.snap(bad)
    assert live.focus_um == 5.0  # nothing moved
    live.stop()
    with pytest.raises(TimeoutError, match="no frame"):
        imaging.snap(6.0, timeout_s=0.3)


def test_imaging_satisfies_the_controllers_protocol(running: Any) -> None:
    from patchpilot.control._protocol import Imaging as ControlImaging

    imaging, _ = running
    typed: ControlImaging = imaging  # checked by mypy
    assert isinstance(typed, ControlImaging)
