"""A simulated ``libum.so``: Sensapex uMp manipulators in Python, under the real SDK classes.

The ``sensapex`` package's ``UMP``, ``SensapexDevice`` and ``MoveRequest`` call the C library
through ``UMP.get_lib()`` as ``lib.um_xxx(handle, *ctypes_args)``. ``SimulatedLibum`` answers
those calls (positions, goto, drive status, stop, stop-all, device list, axis count, firmware,
receive) so the SDK's own code paths -- its poll thread, retries and bugs -- run unchanged.
``simulated_ump(lib)`` installs it as the library and yields the ``UMP`` singleton.

Devices move each axis with a trapezoidal profile at the per-axis speed the SDK sends, in real
time (the SDK's threads sleep in real time). Faults per device: ``link_lost`` (every call times
out, ``UMError -3``), ``drop_calls`` (the next n calls time out), ``stalled_axis`` (that axis
does not move; the drive reports failure once the others stop), ``reported_axes`` (a uMp-4 that
answers 3 to ``um_get_axis_count``).
"""

from __future__ import annotations

import ctypes
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from patchpilot.hardware._kinematics import TrapezoidProfile, plan_trapezoid

__all__ = ["SimulatedLibum", "SimulatedUmp", "simulated_ump"]

LIBUM_TIMEOUT = -3
LIBUM_INVALID_ARG = -4
LIBUM_INVALID_DEV = -5
_DRIVE_BUSY, _DRIVE_DONE, _DRIVE_FAILED = 1, 0, -1
_DEFAULT_ACCEL_UM_S2 = 10000.0
_ERRORS = {
    0: b"No error",
    -1: b"Operating System level error",
    -2: b"Communication socket not open",
    LIBUM_TIMEOUT: b"Timeout",
    LIBUM_INVALID_ARG: b"Illegal command argument",
    LIBUM_INVALID_DEV: b"Illegal Device Id",
    -6: b"Illegal response received",
}


@dataclass
class _Axis:
    start_um: float
    target_um: float
    start_s: float
    profile: TrapezoidProfile

    def at(self, t_s: float) -> float:
        travelled = self.profile.distance_at(t_s - self.start_s)
        return self.start_um + math.copysign(travelled, self.target_um - self.start_um)

    def end_s(self) -> float:
        return self.start_s + self.profile.duration_s


@dataclass
class SimulatedUmp:
    """One simulated uMp manipulator (positions in µm, 4 slots; ``n_axes`` of them real)."""

    device_id: int
    n_axes: int = 3
    position_um: tuple[float, ...] = (10000.0, 10000.0, 10000.0, 10000.0)
    reported_axes: int | None = None
    """What ``um_get_axis_count`` answers (uMp-4s sometimes say 3); None = ``n_axes``."""
    firmware: tuple[int, int, int, int, int] = (4, 2, 1, 0, 0)
    link_lost: bool = False
    drop_calls: int = 0
    stalled_axis: int | None = None
    axes: list[_Axis] = field(default_factory=list)
    failed: bool = False

    def __post_init__(self) -> None:
        now = time.monotonic()
        idle = plan_trapezoid(0.0, 1.0, 1.0)
        self.axes = [_Axis(v, v, now, idle) for v in self.position_um]

    def positions(self, now: float) -> list[float]:
        return [axis.at(now) for axis in self.axes]

    def drive_status(self, now: float) -> int:
        if any(now < axis.end_s() for axis in self.axes):
            return _DRIVE_BUSY
        return _DRIVE_FAILED if self.failed else _DRIVE_DONE

    def goto(self, target: list[float], speed: list[float], accel_um_s2: float, now: float) -> None:
        here = self.positions(now)
        self.failed = False
        accel = accel_um_s2 if accel_um_s2 > 0 else _DEFAULT_ACCEL_UM_S2
        for index in range(self.n_axes):
            goal = target[index]
            if not math.isfinite(goal) or speed[index] <= 0:
                self.axes[index] = _Axis(here[index], here[index], now, plan_trapezoid(0, 1, 1))
                continue
            if index == self.stalled_axis:
                goal = here[index]  # the motor does not turn
                self.failed = True
            distance = abs(goal - here[index])
            profile = plan_trapezoid(distance, speed[index], accel)
            self.axes[index] = _Axis(here[index], goal, now, profile)

    def stop(self, now: float) -> None:
        here = self.positions(now)
        idle = plan_trapezoid(0.0, 1.0, 1.0)
        self.axes = [_Axis(v, v, now, idle) for v in here]


class _CFunction:
    """A Python callable dressed as a ctypes function (the SDK sets ``restype`` on some)."""

    def __init__(self, name: str, body: Callable[..., Any], calls: list[tuple[str, int]]) -> None:
        self.__name__ = name
        self.restype: Any = ctypes.c_int
        self.argtypes: Any = None
        self._body = body
        self._calls = calls

    def __call__(self, *args: Any) -> Any:
        self._calls.append((self.__name__, len(args)))
        return self._body(*args)


def _value(arg: Any) -> Any:
    return arg.value if hasattr(arg, "value") else arg


class SimulatedLibum:
    """The subset of ``libum.so`` that sensapex-py 1.504 calls, over ``SimulatedUmp`` devices.

    Parameters
    ----------
    devices
        The manipulators on the (simulated) network.
    timeout_delay_s
        How long a call to an unreachable device takes before it times out (real seconds).
    """

    _name = "simulated libum"

    def __init__(self, devices: list[SimulatedUmp], timeout_delay_s: float = 0.01) -> None:
        from sensapex.sensapex import um_state

        self.devices = {device.device_id: device for device in devices}
        self.timeout_delay_s = timeout_delay_s
        self.calls: list[tuple[str, int]] = []
        """(function name, number of arguments) of every call, in order."""
        self._lock = threading.RLock()
        self._state = um_state()  # the SDK builds a ctypes pointer to the handle's address
        self._last_error = 0
        self._cache: dict[int, tuple[list[float], float]] = {}
        bodies: dict[str, Callable[..., Any]] = {
            "um_get_version": lambda: b"v1.504",
            "um_errorstr": lambda code: _ERRORS.get(int(_value(code)), b"Unknown error"),
            "um_open": self._open,
            "um_close": lambda handle: 0,
            "um_last_error": lambda handle: self._last_error,
            "um_last_os_errno": lambda handle: 0,
            "um_get_device_list": self._device_list,
            "um_get_axis_count": self._axis_count,
            "um_get_positions": self._get_positions,
            "um_goto_position_ext": self._goto,
            "um_get_drive_status": self._drive_status,
            "um_stop": self._stop,
            "um_stop_all": self._stop_all,
            "um_receive": self._receive,
            "um_read_version": self._read_version,
            "um_ping": self._ping,
        }
        for name, body in bodies.items():
            setattr(self, name, _CFunction(name, body, self.calls))

    def called(self, name: str) -> int:
        """How many times ``name`` was called."""
        return sum(1 for called, _ in self.calls if called == name)

    # -- helpers -------------------------------------------------------------------------
    def _fail(self, code: int) -> int:
        self._last_error = code
        return -1

    def _reach(self, dev: Any) -> SimulatedUmp | int:
        """The device, or an error code after the time a real timeout takes."""
        device = self.devices.get(int(_value(dev)))
        if device is None:
            return self._fail(LIBUM_INVALID_DEV)
        if device.link_lost or device.drop_calls > 0:
            device.drop_calls = max(0, device.drop_calls - 1)
            time.sleep(self.timeout_delay_s)
            return self._fail(LIBUM_TIMEOUT)
        return device

    # -- library functions ---------------------------------------------------------------
    def _open(self, address: Any, timeout: Any, group: Any) -> int:
        return ctypes.addressof(self._state)

    def _device_list(self, handle: Any, array_ref: Any, max_id: Any) -> int:
        with self._lock:
            reachable = sorted(d.device_id for d in self.devices.values() if not d.link_lost)
            array = array_ref._obj
            count = min(len(reachable), int(_value(max_id)))
            for index in range(count):
                array[index] = reachable[index]
            return count

    def _axis_count(self, handle: Any, dev: Any) -> int:
        with self._lock:
            device = self._reach(dev)
            if isinstance(device, int):
                return device
            return device.reported_axes or device.n_axes

    def _get_positions(self, handle: Any, dev: Any, time_limit: Any, *refs: Any) -> int:
        # A C function ignores extra arguments; so does this one (the SDK's retry adds one).
        with self._lock:
            dev_id = int(_value(dev))
            limit_ms = int(_value(time_limit))
            cached = self._cache.get(dev_id)
            now = time.monotonic()
            fresh = cached is not None and (
                limit_ms == 0 or (limit_ms > 0 and (now - cached[1]) * 1000 <= limit_ms)
            )
            if fresh and cached is not None:
                values = cached[0]
            else:
                device = self._reach(dev)
                if isinstance(device, int):
                    return device
                values = device.positions(now)
                self._cache[dev_id] = (values, now)
            for ref, value in zip(refs[:4], values, strict=True):
                ref._obj.value = value
            return 0

    def _goto(self, handle: Any, dev: Any, *args: Any) -> int:
        with self._lock:
            device = self._reach(dev)
            if isinstance(device, int):
                return device
            values = [float(_value(a)) for a in args]
            target, speed, accel = values[0:4], values[4:8], values[9]
            if any(0 < s < 1 for s in speed):
                return self._fail(LIBUM_INVALID_ARG)
            device.goto(target, speed, accel, time.monotonic())
            return 0

    def _drive_status(self, handle: Any, dev: Any) -> int:
        with self._lock:
            device = self._reach(dev)
            if isinstance(device, int):
                return device
            return device.drive_status(time.monotonic())

    def _stop(self, handle: Any, dev: Any) -> int:
        with self._lock:
            device = self._reach(dev)
            if isinstance(device, int):
                return device
            device.stop(time.monotonic())
            return 0

    def _stop_all(self, handle: Any) -> int:
        # A broadcast: reaches every device whose link works, and nobody acknowledges it.
        with self._lock:
            now = time.monotonic()
            for device in self.devices.values():
                if not device.link_lost:
                    device.stop(now)
            return 0

    def _receive(self, handle: Any, timeout: Any) -> int:
        # Status packets arrive from every device whose link works.
        with self._lock:
            now = time.monotonic()
            for device in self.devices.values():
                if not device.link_lost:
                    self._cache[device.device_id] = (device.positions(now), now)
            return 0

    def _read_version(self, handle: Any, dev: Any, array_ref: Any, size: Any) -> int:
        with self._lock:
            device = self._reach(dev)
            if isinstance(device, int):
                return device
            for index, part in enumerate(device.firmware[: int(_value(size))]):
                array_ref._obj[index] = part
            return 0

    def _ping(self, handle: Any, dev: Any) -> int:
        with self._lock:
            device = self._reach(dev)
            return device if isinstance(device, int) else 0


@contextmanager
def simulated_ump(lib: SimulatedLibum, *, start_poller: bool = True) -> Iterator[Any]:
    """Install ``lib`` as the sensapex library and yield a fresh ``UMP`` singleton.

    The previous library and singleton are restored afterwards; the UMP is closed.
    """
    from sensapex import UMP

    saved_lib, saved_single = UMP._lib, UMP._single
    UMP._lib, UMP._single = lib, None
    ump = None
    try:
        ump = UMP.get_ump(start_poller=start_poller, handle_atexit=False)
        yield ump
    finally:
        if ump is not None:
            ump.close()
        UMP._lib, UMP._single = saved_lib, saved_single
