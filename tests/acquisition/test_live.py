"""REAL pycromanager acquisitions (Python backend) on the simulated microscope."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycromanager.acquisition.acq_eng_py.internal.engine import Engine

from patchpilot.acquisition._metadata import CorePositionReader
from patchpilot.acquisition.devices import RenderRequest
from patchpilot.acquisition.hook import FrameHook
from patchpilot.acquisition.live import LiveAcquisition
from patchpilot.acquisition.pycromanager_session import (
    AcquisitionError,
    PycroManagerSession,
    check_event,
    one_argument_hook,
)
from patchpilot.acquisition.simulated_microscope import SimulatedMicroscope
from patchpilot.types import Frame, TipDetection

from .conftest import BrightestSpotLocaliser, SpotSource


def make_hook(scope: SimulatedMicroscope, delay_s: float = 0.0) -> FrameHook:
    return FrameHook(BrightestSpotLocaliser(delay_s), positions=CorePositionReader(scope.core))


def test_hook_sees_every_frame_and_pycromanager_keeps_them(
    microscope: SimulatedMicroscope, session: PycroManagerSession
) -> None:
    hook = make_hook(microscope)
    indices: list[int] = []
    hook.subscribe(lambda frame, detections: indices.append(frame.index))
    live = LiveAcquisition(session, hook, max_frames=40, focus_um=5.0)
    live.start()
    assert live.wait(20.0)
    live.stop()
    assert hook.stats.frames_seen == 40 == microscope.camera.frames_snapped
    assert hook.stats.frames_rejected == 0
    assert len(live.dataset.get_image_coordinates_list()) == 40  # nothing was dropped
    assert indices == sorted(indices) and indices[-1] == 39
    assert hook.stats.frames_localised + hook.stats.frames_skipped == 40


def test_slow_localiser_skips_frames_without_stalling_the_acquisition(
    microscope: SimulatedMicroscope, session: PycroManagerSession
) -> None:
    microscope.real_time = True  # 30 frames/s, as on a rig
    hook = make_hook(microscope, delay_s=0.1)  # three frame periods per localisation
    live = LiveAcquisition(session, hook, max_frames=45)
    live.start()
    assert live.wait(10.0)
    live.stop()
    stats = hook.stats
    assert stats.frames_seen == 45
    assert len(live.dataset.get_image_coordinates_list()) == 45
    assert live.elapsed_s < 45 / 30 + 1.0  # paced by the camera, not by the localiser
    assert stats.frames_skipped >= 20
    assert stats.frames_localised == 45 - stats.frames_skipped


def test_closed_loop_events_follow_the_results(microscope_config: Any) -> None:
    # The spot sits where the focus puts it: x = 10 + focus. A "controller" subscribed to
    # the results moves the focus until the spot is at x = 60; the focus of later frames
    # can only come from what was localised.
    source = SpotSource(lambda r: (round(10 + r.focus_um), 30))
    with (
        SimulatedMicroscope(microscope_config, source, real_time=False) as scope,
        PycroManagerSession(scope.core) as opened,
    ):
        hook = make_hook(scope)
        live = LiveAcquisition(opened, hook, focus_um=0.0)
        focuses: list[float] = []
        settled_focus: list[float] = []
        settled = threading.Event()

        def servo(frame: Frame, detections: Any) -> None:
            focuses.append(frame.focus_um)
            error_px = 60.0 - detections[0].x_px
            if abs(error_px) < 0.5 and not settled.is_set():
                settled_focus.append(frame.focus_um)
                settled.set()
            live.focus_um = frame.focus_um + 0.5 * error_px

        hook.subscribe(servo)
        live.start()
        assert settled.wait(10.0)
        live.stop()
    assert focuses[0] == 0.0
    assert abs(settled_focus[0] - 50.0) <= 0.5
    assert any(0.0 < f < 50.0 for f in focuses)  # it got there in steps


def test_hardware_hooks_get_one_argument_and_event_lists(
    microscope: SimulatedMicroscope, session: PycroManagerSession
) -> None:
    seen: list[Any] = []

    def two_argument_hook(event: dict[str, Any], event_queue: Any) -> dict[str, Any]:
        seen.append((event["axes"]["time"], event_queue is not None))
        return event

    hook = make_hook(microscope)
    acquisition = session.acquisition(hook, post_hardware_hook_fn=two_argument_hook)
    hook.start()
    # One acquire call with several events: the engine merges them into a sequence and the
    # hook receives a LIST.
    session.submit(acquisition, [{"axes": {"time": t}} for t in range(5)])
    session.finish(acquisition)
    hook.stop()
    assert sorted(t for t, _ in seen) == [0, 1, 2, 3, 4]
    assert all(has_queue for _, has_queue in seen)
    assert hook.stats.frames_seen == 5

    adapted = one_argument_hook(lambda e: None if e["axes"]["time"] == 1 else e, lambda: None)
    kept = adapted([{"axes": {"time": 0}}, {"axes": {"time": 1}}])
    assert kept == [{"axes": {"time": 0}}]
    with pytest.raises(TypeError, match="1 or 2 arguments"):
        one_argument_hook(lambda a, b, c: a, lambda: None)


def test_events_with_tags_are_refused() -> None:
    with pytest.raises(ValueError, match="tags"):
        check_event({"axes": {"time": 0}, "tags": {"a": 1}})
    with pytest.raises(ValueError, match="no 'axes'"):
        check_event([{"axes": {"time": 0}}, {"z": 1.0}])


def test_a_processor_error_surfaces_when_the_acquisition_ends(
    microscope: SimulatedMicroscope, session: PycroManagerSession
) -> None:
    def broken(image: Any, metadata: Any) -> Any:
        raise RuntimeError("processor bug")

    acquisition = session.acquisition(broken)
    session.submit(acquisition, {"axes": {"time": 0}})
    with pytest.raises(AcquisitionError, match="processor bug"):
        session.finish(acquisition)


def test_engine_singleton_is_torn_down_between_sessions(microscope: SimulatedMicroscope) -> None:
    with PycroManagerSession(microscope.core) as first:
        assert Engine.get_core() is first.facade
        with pytest.raises(AcquisitionError, match="already running"):
            PycroManagerSession(microscope.core).__enter__()
    assert not hasattr(Engine, "singleton")
    for _ in range(2):  # a fresh engine each time, and acquisitions work again
        with PycroManagerSession(microscope.core) as again:
            hook = make_hook(microscope)
            live = LiveAcquisition(again, hook, max_frames=3)
            live.start()
            assert live.wait(10.0)
            live.stop()
            assert hook.stats.frames_seen == 3


def test_abort_ends_a_running_acquisition(
    microscope: SimulatedMicroscope, session: PycroManagerSession
) -> None:
    microscope.real_time = True
    hook = make_hook(microscope)
    live = LiveAcquisition(session, hook)
    live.start()
    threading.Event().wait(0.2)
    live.abort(timeout_s=5.0)
    assert not live.is_running
    assert 1 <= hook.stats.frames_seen <= 20


def test_session_close_aborts_what_still_runs(microscope: SimulatedMicroscope) -> None:
    microscope.real_time = True
    hook = make_hook(microscope)
    with PycroManagerSession(microscope.core) as opened:
        live = LiveAcquisition(opened, hook)
        live.start()
        threading.Event().wait(0.1)
    hook.stop()
    assert not live.is_running


def test_recording_saves_every_frame_to_ndtiff(
    microscope: SimulatedMicroscope, session: PycroManagerSession, tmp_path: Path
) -> None:
    hook = make_hook(microscope)
    frames: dict[int, np.ndarray] = {}
    hook.subscribe(lambda frame, detections: frames.setdefault(frame.index, frame.image))
    live = LiveAcquisition(session, hook, directory=tmp_path, max_frames=12, focus_um=2.0)
    live.start()
    assert live.wait(10.0)
    live.stop()
    path = live.dataset_path
    assert path is not None and path.parent == tmp_path
    assert (path / "NDTiff.index").exists()
    dataset = live.dataset
    assert len(dataset.get_image_coordinates_list()) == 12
    for index, image in frames.items():
        assert np.array_equal(dataset.read_image(time=index), image)
    assert dataset.read_metadata(time=3)["ZPosition_um_Intended"] == 2.0
    dataset.close()


def test_focus_must_be_finite(session: PycroManagerSession, microscope: Any) -> None:
    live = LiveAcquisition(session, make_hook(microscope))
    with pytest.raises(ValueError, match="finite"):
        live.focus_um = float("nan")
    with pytest.raises(ValueError, match="at least 1"):
        LiveAcquisition(session, make_hook(microscope), max_frames=0)


def test_render_request_carries_the_stage_and_focus(microscope_config: Any, tmp_path: Path) -> None:
    requests: list[RenderRequest] = []

    def record(request: RenderRequest) -> tuple[int, int]:
        requests.append(request)
        return (5, 5)

    with SimulatedMicroscope(microscope_config, SpotSource(record), real_time=False) as scope:
        scope.core.setXYPosition(30.0, -20.0)
        with PycroManagerSession(scope.core) as opened:
            hook = make_hook(scope)
            got: list[tuple[Frame, list[TipDetection]]] = []
            hook.subscribe(lambda f, d: got.append((f, list(d))))
            live = LiveAcquisition(opened, hook, max_frames=2, focus_um=-7.5)
            live.start()
            assert live.wait(10.0)
            live.stop()
    assert requests[-1].fov_center_um == (30.0, -20.0) and requests[-1].focus_um == -7.5
    assert requests[-1].pixel_size_um == 0.5 and requests[-1].shape_px == (64, 96)
    assert got[-1][0].fov_center_um == (30.0, -20.0) and got[-1][0].focus_um == -7.5
