"""Snapshots with a chosen focus from a running live acquisition (calibration sweeps).

The controller's calibration moves a manipulator, then asks for a fresh image at some focus
and the tips found in it. :class:`Imaging` does that over a running closed-loop acquisition
(pycromanager or pymmcore-plus): it sets the focus of the next events and waits for the
first localised frame taken wholly after the call at that focus.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Protocol

from patchpilot.acquisition.hook import FrameHook
from patchpilot.config import checked_focus_um
from patchpilot.types import Frame, TipDetection

__all__ = ["FocusableAcquisition", "Imaging"]


class FocusableAcquisition(Protocol):
    """A running acquisition whose next frames' focus can be set."""

    hook: FrameHook

    @property
    def focus_um(self) -> float | None: ...

    @focus_um.setter
    def focus_um(self, value: float | None) -> None: ...


class Imaging:
    """``snap(focus_um=None) -> (Frame, detections)`` and ``focus_um`` over a live acquisition.

    Parameters
    ----------
    live
        The running acquisition (:class:`~patchpilot.acquisition.live.LiveAcquisition` or
        :class:`~patchpilot.acquisition.mda.MDALiveAcquisition`).
    focus_limits_um
        Focus travel (µm); a snap outside it is refused before anything moves.
    timeout_s
        Longest wait for a snap.
    focus_tolerance_um
        How close a frame's focus must be to the requested one.
    """

    def __init__(
        self,
        live: FocusableAcquisition,
        *,
        focus_limits_um: tuple[float, float] = (-1000.0, 1000.0),
        timeout_s: float = 3.0,
        focus_tolerance_um: float = 0.01,
    ) -> None:
        self._live = live
        self._limits = focus_limits_um
        self.timeout_s = timeout_s
        self._tolerance_um = focus_tolerance_um
        self._cond = threading.Condition()
        self._latest: tuple[Frame, list[TipDetection]] | None = None
        self._unsubscribe = live.hook.subscribe(self._on_frame)

    def _on_frame(self, frame: Frame, detections: Sequence[TipDetection]) -> None:
        with self._cond:
            self._latest = (frame, list(detections))
            self._cond.notify_all()

    @property
    def focus_um(self) -> float:
        """The focus (µm) frames are taken at: the requested one, else the last frame's.

        Raises
        ------
        RuntimeError
            No focus was requested and no frame has arrived yet.
        """
        requested = self._live.focus_um
        if requested is not None:
            return requested
        with self._cond:
            latest = self._latest
        if latest is None:
            raise RuntimeError("no frame has arrived yet, so the focus is unknown")
        return latest[0].focus_um

    @focus_um.setter
    def focus_um(self, value: float) -> None:
        self._live.focus_um = self._checked(value)

    def _checked(self, focus_um: float) -> float:
        return checked_focus_um(focus_um, self._limits)

    def snap(
        self, focus_um: float | None = None, timeout_s: float | None = None
    ) -> tuple[Frame, list[TipDetection]]:
        """The first localised frame taken after this call (at ``focus_um`` if given).

        Raises
        ------
        ValueError
            ``focus_um`` is not finite or outside the focus travel (nothing moved).
        TimeoutError
            No such frame within the timeout (the acquisition stalled or stopped).
        """
        if focus_um is not None:
            self._live.focus_um = self._checked(focus_um)
        wanted = self._live.focus_um
        # The next frame to arrive may have been exposing before this call: skip it.
        first_index = self._live.hook.stats.frames_seen + 1
        timeout = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                latest = self._latest
                if latest is not None and latest[0].index >= first_index:
                    frame = latest[0]
                    if wanted is None or abs(frame.focus_um - wanted) <= self._tolerance_um:
                        return latest
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"no frame at focus {wanted} µm arrived within {timeout:g} s"
                    )
                self._cond.wait(remaining)

    def close(self) -> None:
        """Stop listening to the hook."""
        self._unsubscribe()
