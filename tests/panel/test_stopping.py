"""STOP ALL never hangs and reports who did not stop; clearance warnings are cached."""

from __future__ import annotations

import threading
import time

import numpy as np

from patchpilot.clock import RealClock
from patchpilot.events import EventLog
from patchpilot.hardware import create_manipulators
from patchpilot.panel.clearance import ClearanceMonitor
from patchpilot.panel.stopping import stop_everything
from tests.panel.rig import rig_config


def test_a_hanging_controller_does_not_hold_up_the_stop() -> None:
    config = rig_config(2)
    log = EventLog()
    devices = create_manipulators(config, log=log, clock=RealClock())
    try:
        for device in devices.values():
            device.move_by((0.0, 0.0, 200.0), 100.0)
        hang = threading.Event()

        def stuck_controller() -> dict[str, str | None]:
            hang.wait(10.0)
            return {}

        started = time.monotonic()
        results = stop_everything(stuck_controller, list(devices), devices, log, timeout_s=0.3)
        took_s = time.monotonic() - started
        hang.set()

        assert took_s < 1.0
        assert results == {"P1": None, "P2": None}
        time.sleep(0.1)
        assert not any(device.is_busy() for device in devices.values())
        faults = [e for e in log.tail(100) if e["kind"] == "fault" and e["source"] == "panel"]
        assert faults[-1]["message"] == "controller did not acknowledge stop all"
    finally:
        for device in devices.values():
            device.close()


def test_a_device_that_cannot_be_stopped_is_named() -> None:
    config = rig_config(2)
    log = EventLog()
    devices = create_manipulators(config, log=log, clock=RealClock())
    try:
        devices["P2"].inject_fault("link_lost")  # type: ignore[attr-defined]

        def controller_stop() -> dict[str, str | None]:
            return {"P1": None, "P2": "CommunicationError: no answer"}

        results = stop_everything(controller_stop, list(devices), devices, log, timeout_s=1.0)
        assert results["P1"] is None
        assert results["P2"] is not None and "P2" in results["P2"]
    finally:
        for device in devices.values():
            device.close()


def test_without_devices_the_controller_answers() -> None:
    def failing() -> dict[str, str | None]:
        raise RuntimeError("broken")

    results = stop_everything(failing, ["P1"], None, EventLog(), timeout_s=1.0)
    assert results == {"P1": "RuntimeError: broken"}


def test_clearance_is_cached_until_a_tip_moves() -> None:
    config = rig_config(2)
    now = [0.0]
    monitor = ClearanceMonitor(
        config.pipettes, 15.0, period_s=0.5, move_um=0.5, clock=lambda: now[0]
    )
    tips = {"P1": (-6.0, 0.0, 60.0), "P2": (6.0, 0.0, 60.0)}
    (first,) = monitor.warnings(tips)
    assert first.is_violation and first.gap_um < 12.0

    far = {"P1": (-90.0, 0.0, 60.0), "P2": (90.0, 0.0, 60.0)}
    now[0] = 0.1
    assert monitor.warnings(far) == (first,)  # within the period: the cached answer
    now[0] = 0.7
    assert monitor.warnings(far) == ()
    assert monitor.warnings({"P1": None, "P2": (0.0, 0.0, 0.0)}) == ()
    assert np.isfinite(monitor.near_um)
