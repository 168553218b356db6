"""STOP ALL as the panel does it: the devices first, then the controller, never hanging.

1. Every manipulator gets stop in parallel (``hardware.stop_all``), without waiting for the
   controller's lock, which a control tick may hold.
2. The controller stops its machines (it stops the devices again); if it does not answer
   within the timeout, that is reported and not waited for.
3. A calibration the panel started keeps stepping after a stop-all (the controller's session
   does not abort on it, and returns the pipette to its start); :class:`CalibrationGuard`
   stops that pipette again whenever it moves, until the calibration has ended.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from patchpilot.events import EventKind
from patchpilot.hardware import ManipulatorError, stop_all

if TYPE_CHECKING:
    from patchpilot.events import EventLog
    from patchpilot.hardware import Manipulator

__all__ = ["CalibrationGuard", "stop_everything"]

_GUARD_POLL_S = 0.005
_GUARD_LIMIT_S = 300.0


def stop_everything(
    controller_stop: Callable[[], Mapping[str, str | None]],
    names: list[str],
    manipulators: Mapping[str, Manipulator] | None,
    log: EventLog,
    timeout_s: float,
) -> dict[str, str | None]:
    """Stop the devices directly, then through the controller (see the module docstring).

    Returns each pipette's error, or None when it stopped; never raises.
    """
    results: dict[str, str | None] = {}
    if manipulators is not None:
        results.update(stop_all(manipulators.values(), timeout_s=timeout_s))
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def through_controller() -> None:
        try:
            outcome["results"] = controller_stop()
        except Exception as exc:  # reported below, never raised
            outcome["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            done.set()

    threading.Thread(target=through_controller, name="panel-stop-all", daemon=True).start()
    if not done.wait(timeout_s):
        log.record(
            EventKind.FAULT,
            "panel",
            "controller did not acknowledge stop all",
            timeout_s=timeout_s,
        )
        outcome["error"] = f"controller did not answer within {timeout_s:g} s"
    if "results" in outcome:
        for name, error in outcome["results"].items():
            direct = results.get(name, error)
            # Stopped when either stop went through; otherwise the direct stop's error.
            results[name] = None if direct is None or error is None else direct
    elif manipulators is None:
        results = dict.fromkeys(names, outcome.get("error", "stop all failed"))
    return results


class CalibrationGuard:
    """Holds one pipette still while a calibration thread that ignores stop-all runs on.

    Parameters
    ----------
    log
        Where the re-stops are reported.
    poll_s
        How often the device is asked whether it moves (s).
    """

    def __init__(self, log: EventLog, poll_s: float = _GUARD_POLL_S) -> None:
        self._log = log
        self._poll_s = poll_s
        self._thread: threading.Thread | None = None

    def hold(self, manipulator: Manipulator, calibration: threading.Thread) -> None:
        """Stop ``manipulator`` whenever it moves, until ``calibration`` ends (idempotent)."""
        if not calibration.is_alive() or (self._thread is not None and self._thread.is_alive()):
            return

        def run() -> None:
            deadline = time.monotonic() + _GUARD_LIMIT_S
            reported = False
            while calibration.is_alive() and time.monotonic() < deadline:
                try:
                    busy = manipulator.is_busy()
                except ManipulatorError:
                    busy = True  # cannot tell: stop it anyway
                if busy:
                    with contextlib.suppress(ManipulatorError):
                        manipulator.stop()
                    if not reported:
                        reported = True
                        self._log.record(
                            EventKind.FAULT,
                            "panel",
                            "calibration moved after stop all; stopped again",
                            pipette=manipulator.name,
                        )
                time.sleep(self._poll_s)

        self._thread = threading.Thread(target=run, name="panel-calibration-guard", daemon=True)
        self._thread.start()
