"""The acquisition hook: hands each frame to a localiser worker without ever blocking.

Pycro-Manager calls ``image_process_fn`` on its acquisition thread; anything slow there
stalls or truncates the acquisition (pycromanager #588, #606). :class:`FrameHook` only
copies the frame into a one-place "latest frame" slot (replacing, and counting as skipped,
a frame the worker has not taken yet) and returns ``(image, metadata)`` unchanged, so
Micro-Manager still saves every frame. A worker thread builds a :class:`~patchpilot.types.Frame`,
runs the localiser and hands ``(frame, detections)`` to subscribers (the controller).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from patchpilot.acquisition._metadata import (
    PositionReader,
    focus_from_metadata,
    pixel_size_from_metadata,
    xy_from_metadata,
)
from patchpilot.clock import Clock, RealClock
from patchpilot.events import EventKind, EventLog
from patchpilot.types import Frame, TipDetection

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["FrameHook", "FrameSubscriber", "HookStats", "NextEventFn", "TipLocaliser"]

_SOURCE = "acquisition"
_ACCEPTED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))


class TipLocaliser(Protocol):
    """What the hook needs from a localiser (``patchpilot.localisation.Localiser`` fits)."""

    def localise(self, image: NDArray[Any], pixel_size_um: float) -> Sequence[TipDetection]: ...


FrameSubscriber = Callable[[Frame, Sequence[TipDetection]], object]
"""Called on the worker thread with each localised frame; must return quickly."""

NextEventFn = Callable[[Mapping[str, Any]], "dict[str, Any] | None"]
"""Closed loop: given a frame's metadata, the next acquisition event, or None to finish."""


@dataclass(frozen=True)
class HookStats:
    """Counters since the hook was created."""

    frames_seen: int
    frames_skipped: int
    """Replaced in the slot before the worker took them (the localiser was busy)."""
    frames_rejected: int
    """Wrong dtype, shape or missing pixel size: reported, passed on, not localised."""
    frames_localised: int
    localiser_errors: int
    subscriber_errors: int


@dataclass
class _Pending:
    image: NDArray[Any]
    metadata: dict[str, Any]
    index: int
    timestamp_s: float
    ready_perf_s: float
    xy_um: tuple[float, float]
    focus_um: float
    pixel_size_um: float


class FrameHook:
    """Pycro-Manager ``image_process_fn`` (and pymmcore-plus ``frameReady`` slot).

    Parameters
    ----------
    localiser
        Finds tips in an image; runs on the worker thread only.
    positions
        Reads XY stage and focus (µm) for metadata that does not carry them.
    log
        Every localisation (with its frame index) and every fault is recorded here.
    clock
        Frame timestamps (``Frame.timestamp_s``) are this clock's ``now()``.
    expected_shape_px
        ``(height, width)`` frames must have; None accepts any 2-D frame.
    default_pixel_size_um
        Used when the metadata has no pixel size; None rejects such frames.
    next_event
        Closed loop: called in the hook with each frame's metadata; its result is put on
        the acquisition's event queue (None finishes the acquisition).
    """

    def __init__(
        self,
        localiser: TipLocaliser,
        *,
        positions: PositionReader | None = None,
        log: EventLog | None = None,
        clock: Clock | None = None,
        expected_shape_px: tuple[int, int] | None = None,
        default_pixel_size_um: float | None = None,
        next_event: NextEventFn | None = None,
        latency_window: int = 100_000,
    ) -> None:
        self._localiser = localiser
        self._positions = positions
        self.log = log if log is not None else EventLog()
        self._clock = clock if clock is not None else RealClock()
        self._expected_shape = expected_shape_px
        self._default_pixel_size_um = default_pixel_size_um
        self.next_event = next_event
        self._subscribers: list[FrameSubscriber] = []
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._slot: _Pending | None = None
        self._stopping = False
        self._worker: threading.Thread | None = None
        self._counts = dict.fromkeys(
            ("seen", "skipped", "rejected", "localised", "localiser_errors", "subscriber_errors"),
            0,
        )
        self._rejections: dict[str, int] = {}
        self._latencies_ms: deque[float] = deque(maxlen=latency_window)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Start the localiser worker (idempotent)."""
        with self._lock:
            if self._worker is not None and self._worker.is_alive():
                return
            self._stopping = False
            self._worker = threading.Thread(
                target=self._run, name="patchpilot-localiser", daemon=True
            )
            self._worker.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Finish the frame in hand (and the one waiting), then stop the worker.

        Raises
        ------
        TimeoutError
            The worker did not finish within ``timeout_s`` (a localiser call hung).
        """
        with self._lock:
            worker = self._worker
            self._stopping = True
            self._ready.notify_all()
        if worker is None:
            return
        worker.join(timeout_s)
        if worker.is_alive():
            self.log.record(EventKind.FAULT, _SOURCE, "localiser worker did not stop")
            raise TimeoutError(f"localiser worker still busy after {timeout_s:g} s")
        with self._lock:
            self._worker = None

    @property
    def is_running(self) -> bool:
        worker = self._worker
        return worker is not None and worker.is_alive()

    def __enter__(self) -> FrameHook:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def subscribe(self, subscriber: FrameSubscriber) -> Callable[[], None]:
        """Call ``subscriber(frame, detections)`` for each localised frame; returns an
        unsubscribe function."""
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    # -- the hook itself (acquisition thread) ---------------------------------------------
    def __call__(
        self, image: Any, metadata: dict[str, Any], event_queue: Any = None
    ) -> tuple[Any, dict[str, Any]]:
        """``image_process_fn``: queue the frame, return it unchanged (never raises)."""
        ready_perf_s = time.perf_counter()
        try:
            self._offer(image, metadata, ready_perf_s)
        except Exception as exc:  # the acquisition must never die in the hook
            self.log.record(EventKind.FAULT, _SOURCE, "hook failed", error=repr(exc))
        if event_queue is not None and self.next_event is not None:
            self._put_next_event(metadata, event_queue)
        return image, metadata

    def two_argument(self) -> Callable[[Any, dict[str, Any]], tuple[Any, dict[str, Any]]]:
        """The hook as an ``(image, metadata)`` function (open loop, any backend)."""

        def process(image: Any, metadata: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
            return self(image, metadata)

        return process

    def on_mda_frame(self, image: Any, event: Any, metadata: Mapping[str, Any]) -> None:
        """pymmcore-plus ``core.mda.events.frameReady`` slot ``(image, event, meta)``."""
        merged = dict(metadata)
        merged.setdefault("mda_event", event)
        self(image, merged)

    def _put_next_event(self, metadata: Mapping[str, Any], event_queue: Any) -> None:
        assert self.next_event is not None
        try:
            event = self.next_event(metadata)
        except Exception as exc:
            self.log.record(EventKind.FAULT, _SOURCE, "next event failed", error=repr(exc))
            event = None  # finish cleanly rather than leave the acquisition waiting
        event_queue.put(event)

    def _offer(self, image: Any, metadata: Mapping[str, Any], ready_perf_s: float) -> None:
        with self._lock:
            index = self._counts["seen"]
            self._counts["seen"] += 1
        problem = self._check(image)
        pixel_size_um = pixel_size_from_metadata(metadata)
        if pixel_size_um is None:
            pixel_size_um = self._default_pixel_size_um
            if problem is None and pixel_size_um is None:
                problem = "metadata has no PixelSize_um / PixelSizeUm"
        if problem is not None or pixel_size_um is None:
            self._reject(index, problem or "no pixel size")
            return
        xy_um = xy_from_metadata(metadata)
        focus_um = focus_from_metadata(metadata)
        if self._positions is not None:
            xy_um = xy_um if xy_um is not None else self._positions.xy_um()
            focus_um = focus_um if focus_um is not None else self._positions.focus_um()
        pending = _Pending(
            image=np.array(image, copy=True),  # the sender may reuse its buffer
            metadata=dict(metadata),
            index=index,
            timestamp_s=self._clock.now(),
            ready_perf_s=ready_perf_s,
            xy_um=xy_um if xy_um is not None else (0.0, 0.0),
            focus_um=focus_um if focus_um is not None else 0.0,
            pixel_size_um=pixel_size_um,
        )
        with self._lock:
            if self._slot is not None:
                self._counts["skipped"] += 1
            self._slot = pending
            self._ready.notify()

    def _check(self, image: Any) -> str | None:
        if not isinstance(image, np.ndarray):
            return f"frame is a {type(image).__name__}, not a numpy array"
        if image.ndim != 2 or image.size == 0:
            return f"frame has shape {image.shape}; expected a non-empty 2-D image"
        if image.dtype not in _ACCEPTED_DTYPES:
            return f"frame dtype {image.dtype} is not uint8, uint16 or float32"
        if self._expected_shape is not None and image.shape != self._expected_shape:
            return f"frame shape {image.shape} differs from the expected {self._expected_shape}"
        return None

    def _reject(self, index: int, reason: str) -> None:
        with self._lock:
            self._counts["rejected"] += 1
            seen = self._rejections.get(reason, 0) + 1
            self._rejections[reason] = seen
        if seen == 1 or seen % 100 == 0:  # a persistent problem must not flood the log
            self.log.record(
                EventKind.FAULT,
                _SOURCE,
                "frame rejected",
                frame_index=index,
                reason=reason,
                occurrences=seen,
            )

    # -- worker ------------------------------------------------------------------------
    def _take(self) -> _Pending | None:
        with self._lock:
            while self._slot is None and not self._stopping:
                self._ready.wait(timeout=0.5)
            pending, self._slot = self._slot, None
            return pending

    def _run(self) -> None:
        while True:
            pending = self._take()
            if pending is None:
                return  # stopping and nothing left
            self._process(pending)

    def _process(self, pending: _Pending) -> None:
        frame = Frame(
            image=pending.image,
            index=pending.index,
            timestamp_s=pending.timestamp_s,
            pixel_size_um=pending.pixel_size_um,
            fov_center_um=pending.xy_um,
            focus_um=pending.focus_um,
            metadata=pending.metadata,
        )
        try:
            detections = list(self._localiser.localise(frame.image, frame.pixel_size_um))
        except Exception as exc:
            with self._lock:
                self._counts["localiser_errors"] += 1
            self.log.record(
                EventKind.FAULT,
                _SOURCE,
                "localiser failed",
                frame_index=frame.index,
                error=repr(exc),
            )
            return
        latency_ms = (time.perf_counter() - pending.ready_perf_s) * 1000.0
        with self._lock:
            self._counts["localised"] += 1
            self._latencies_ms.append(latency_ms)
            subscribers = list(self._subscribers)
        self.log.record(
            EventKind.LOCALISATION,
            _SOURCE,
            f"{len(detections)} tip(s)",
            frame_index=frame.index,
            axes=frame.metadata.get("Axes"),
            frame_timestamp_s=frame.timestamp_s,
            focus_um=frame.focus_um,
            fov_center_um=frame.fov_center_um,
            pixel_size_um=frame.pixel_size_um,
            tips_px=[[d.x_px, d.y_px, d.confidence] for d in detections],
            latency_ms=round(latency_ms, 3),
        )
        for subscriber in subscribers:
            try:
                subscriber(frame, detections)
            except Exception as exc:
                with self._lock:
                    self._counts["subscriber_errors"] += 1
                self.log.record(
                    EventKind.FAULT,
                    _SOURCE,
                    "frame subscriber failed",
                    frame_index=frame.index,
                    subscriber=getattr(subscriber, "__qualname__", repr(subscriber)),
                    error=repr(exc),
                )

    # -- figures -----------------------------------------------------------------------
    @property
    def stats(self) -> HookStats:
        with self._lock:
            counts = dict(self._counts)
        return HookStats(
            frames_seen=counts["seen"],
            frames_skipped=counts["skipped"],
            frames_rejected=counts["rejected"],
            frames_localised=counts["localised"],
            localiser_errors=counts["localiser_errors"],
            subscriber_errors=counts["subscriber_errors"],
        )

    def latencies_ms(self) -> list[float]:
        """Frame-ready to subscribers-called delays (ms) of the most recent frames."""
        with self._lock:
            return list(self._latencies_ms)
