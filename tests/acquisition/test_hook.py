"""The hook on its own: it never blocks or raises, skips rather than queues, reports bad
frames, and builds frames from every metadata dialect."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from patchpilot.acquisition._metadata import (
    focus_from_metadata,
    pixel_size_from_metadata,
    xy_from_metadata,
)
from patchpilot.acquisition.hook import FrameHook
from patchpilot.events import EventLog
from patchpilot.types import Frame, TipDetection

from .conftest import BrightestSpotLocaliser


class FixedPositions:
    def xy_um(self) -> tuple[float, float]:
        return (100.0, -50.0)

    def focus_um(self) -> float:
        return 12.5


def spot_image(x: int = 20, y: int = 10, dtype: Any = np.uint16) -> np.ndarray:
    image = np.zeros((32, 48), dtype=dtype)
    image[y, x] = 3000
    return image


def collect(hook: FrameHook) -> list[tuple[Frame, list[TipDetection]]]:
    results: list[tuple[Frame, list[TipDetection]]] = []
    hook.subscribe(lambda frame, detections: results.append((frame, list(detections))))
    return results


def wait_for(predicate: Any, timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_returns_frame_unchanged_and_localises_in_worker() -> None:
    log = EventLog()
    hook = FrameHook(BrightestSpotLocaliser(), positions=FixedPositions(), log=log)
    results = collect(hook)
    image = spot_image()
    metadata = {"PixelSize_um": 0.5, "Axes": {"time": 0}}
    with hook:
        out_image, out_metadata = hook(image, metadata)
        assert out_image is image and out_metadata is metadata
        wait_for(lambda: len(results) == 1)
        assert hook.two_argument()(image, metadata)[0] is image
        wait_for(lambda: len(results) == 2)
    frame, detections = results[0]
    assert frame.index == 0 and frame.pixel_size_um == 0.5
    assert frame.fov_center_um == (100.0, -50.0) and frame.focus_um == 12.5
    assert (detections[0].x_px, detections[0].y_px) == (20.0, 10.0)
    assert frame.image is not image and np.array_equal(frame.image, image)  # a copy
    records = log.tail(kind="localisation")
    assert [r["frame_index"] for r in records] == [0, 1]
    assert records[0]["tips_px"] == [[20.0, 10.0, 0.9]]


def test_three_argument_form_puts_next_event() -> None:
    class Queue:
        def __init__(self) -> None:
            self.items: list[Any] = []

        def put(self, item: Any) -> None:
            self.items.append(item)

    hook = FrameHook(
        BrightestSpotLocaliser(),
        next_event=lambda md: {"axes": {"time": md["Axes"]["time"] + 1}},
    )
    queue = Queue()
    hook(spot_image(), {"PixelSize_um": 1.0, "Axes": {"time": 4}}, queue)
    assert queue.items == [{"axes": {"time": 5}}]

    def broken(md: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    hook.next_event = broken
    hook(spot_image(), {"PixelSize_um": 1.0, "Axes": {"time": 5}}, queue)
    assert queue.items[-1] is None  # a broken event source finishes the acquisition
    assert hook.log.tail(kind="fault")[-1]["message"] == "next event failed"


def test_slow_localiser_makes_the_hook_skip_not_wait() -> None:
    localiser = BrightestSpotLocaliser(delay_s=0.05)
    hook = FrameHook(localiser)
    results = collect(hook)
    with hook:
        started = time.perf_counter()
        for i in range(40):
            hook(spot_image(x=i), {"PixelSize_um": 1.0})
            time.sleep(0.002)
        elapsed = time.perf_counter() - started
        wait_for(lambda: not hook.stats.frames_seen - hook.stats.frames_skipped > len(results))
    stats = hook.stats
    assert elapsed < 0.5  # 40 calls, each far shorter than one 50 ms localisation
    assert stats.frames_seen == 40
    assert stats.frames_skipped > 20
    assert stats.frames_localised == 40 - stats.frames_skipped == len(results)
    assert results[-1][0].index == 39  # the newest frame is never the one dropped


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (np.zeros((32, 48, 3), np.uint16), "expected a non-empty 2-D image"),
        (np.zeros((32, 48), np.int64), "dtype int64"),
        (np.zeros((16, 16), np.uint16), "differs from the expected (32, 48)"),
        ("not an image", "not a numpy array"),
    ],
)
def test_bad_frame_is_reported_and_passed_on(image: Any, reason: str) -> None:
    localiser = BrightestSpotLocaliser()
    hook = FrameHook(localiser, expected_shape_px=(32, 48))
    with hook:
        out = hook(image, {"PixelSize_um": 1.0})
        hook(spot_image(), {"PixelSize_um": 1.0})
        wait_for(lambda: hook.stats.frames_localised == 1)
    assert out[0] is image
    assert hook.stats.frames_rejected == 1
    fault = hook.log.tail(kind="fault")[-1]
    assert fault["message"] == "frame rejected" and reason in fault["reason"]
    assert fault["frame_index"] == 0
    assert localiser.calls == 1  # only the good frame


def test_missing_pixel_size_rejected_unless_defaulted() -> None:
    hook = FrameHook(BrightestSpotLocaliser())
    hook(spot_image(), {})
    assert hook.stats.frames_rejected == 1
    assert "PixelSize_um" in hook.log.tail(kind="fault")[-1]["reason"]
    defaulted = FrameHook(BrightestSpotLocaliser(), default_pixel_size_um=0.8)
    results = collect(defaulted)
    with defaulted:
        defaulted(spot_image(), {"PixelSizeUm": "0"})  # uncalibrated: falls back
        wait_for(lambda: len(results) == 1)
    assert results[0][0].pixel_size_um == 0.8


def test_repeated_rejections_do_not_flood_the_log() -> None:
    hook = FrameHook(BrightestSpotLocaliser())
    for _ in range(250):
        hook(np.zeros((4, 4, 4), np.uint8), {"PixelSize_um": 1.0})
    assert hook.stats.frames_rejected == 250
    assert [r["occurrences"] for r in hook.log.tail(kind="fault")] == [1, 100, 200]


def test_localiser_and_subscriber_errors_are_recorded() -> None:
    class Failing:
        def localise(self, image: Any, pixel_size_um: float) -> list[TipDetection]:
            raise ValueError("bad weights")

    hook = FrameHook(Failing())
    with hook:
        hook(spot_image(), {"PixelSize_um": 1.0})
        wait_for(lambda: hook.stats.localiser_errors == 1)
    assert "bad weights" in hook.log.tail(kind="fault")[-1]["error"]

    hook = FrameHook(BrightestSpotLocaliser())
    good: list[int] = []

    def bad_subscriber(frame: Frame, detections: Any) -> None:
        raise KeyError("controller bug")

    hook.subscribe(bad_subscriber)
    hook.subscribe(lambda frame, detections: good.append(frame.index))
    with hook:
        hook(spot_image(), {"PixelSize_um": 1.0})
        wait_for(lambda: good == [0])
    assert hook.stats.subscriber_errors == 1


def test_stop_times_out_on_a_hung_localiser() -> None:
    release = threading.Event()

    class Hung:
        def localise(self, image: Any, pixel_size_um: float) -> list[TipDetection]:
            release.wait(5.0)
            return []

    hook = FrameHook(Hung())
    hook.start()
    hook(spot_image(), {"PixelSize_um": 1.0})
    time.sleep(0.05)
    with pytest.raises(TimeoutError, match="still busy"):
        hook.stop(timeout_s=0.1)
    release.set()
    hook.stop(timeout_s=2.0)
    assert not hook.is_running


def test_metadata_dialects() -> None:
    java = {"PixelSizeUm": 0.7, "XPositionUm": 1.0, "YPositionUm": 2.0, "ZPositionUm": 3.0}
    python = {"PixelSize_um": 0.6, "XPosition_um_Intended": 4, "YPosition_um_Intended": 5}
    mda = {"pixel_size_um": 0.5, "position": {"x": 6.0, "y": 7.0, "z": 8.0}}
    assert [pixel_size_from_metadata(m) for m in (java, python, mda)] == [0.7, 0.6, 0.5]
    assert [xy_from_metadata(m) for m in (java, python, mda)] == [(1, 2), (4, 5), (6, 7)]
    assert [focus_from_metadata(m) for m in (java, python, mda)] == [3.0, None, 8.0]
    assert pixel_size_from_metadata({"PixelSize_um": float("nan")}) is None
