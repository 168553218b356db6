"""A simulated Scientifica controller speaking the serial protocol on a pseudo-terminal.

``ScientificaSimulator`` opens a pty pair, serves the master end from a thread and exposes the
slave's path as ``port``: open it with pyserial like a USB serial port. It emulates a version
2 or 3 controller (ticks, ``TOP``/``ACC`` units), real-time trapezoidal moves, the "finished"
flag that drops slightly before the stage stops, the transfer time of each exchange at the baud
rate, and faults: garbled replies, no reply, error replies, a disconnect (the master closes) and
a baud-rate mismatch (the client's termios speed differs from the controller's: it answers
noise without a terminator), and moves that stop short (a blocked axis).

Linux/macOS only (``os.openpty``).
"""

from __future__ import annotations

import os
import select
import termios
import threading
import time
import tty
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from patchpilot.hardware._kinematics import TrapezoidProfile, plan_trapezoid

__all__ = ["ScientificaSimulator", "running_simulator"]

_SPEED_CODES = {termios.B9600: 9600, termios.B38400: 38400}
_NOISE = b"\xf0\x8c\x1e\xfe\x07"


class ScientificaSimulator:
    """A PatchStar-like controller behind a pty (see the module docstring).

    Parameters
    ----------
    version
        2 (10 ticks/µm, v2 speed units) or 3 (100 ticks/µm, µm/s).
    baudrate
        The controller's current rate (9600 after a power cycle).
    position_um
        Where the stage starts (µm).
    transfer_time
        Sleep for the time the bytes would take on the wire at ``baudrate``.
    early_done_s
        ``S`` reads 0 this long before the stage has really stopped.
    """

    def __init__(
        self,
        version: int = 3,
        baudrate: int = 9600,
        position_um: tuple[float, float, float] = (0.0, 0.0, 0.0),
        *,
        transfer_time: bool = True,
        early_done_s: float = 0.03,
        axis_scale: float = 6.4,
    ) -> None:
        if version not in (2, 3):
            raise ValueError(f"version must be 2 or 3, got {version}")
        self.version = version
        self.baudrate = baudrate
        self.transfer_time = transfer_time
        self.early_done_s = early_done_s
        self.axis_scale = axis_scale
        self.ticks_per_um = 100 if version == 3 else 10
        self.received: list[str] = []
        """Every command received at the right baud rate, in order."""
        self.description = "PatchStar sim"
        self.limit_bits = 0
        """What ``limits`` answers (bit 2*axis low end, 2*axis+1 high end)."""
        self._lock = threading.Lock()
        self._speed_um_s = 1000.0
        self._accel_um_s2 = 5000.0
        self._start_um = np.asarray(position_um, dtype=np.float64)
        self._target_um = self._start_um.copy()
        self._start_s = time.monotonic()
        self._profile: TrapezoidProfile = plan_trapezoid(0.0, 1.0, 1.0)
        self._garble = 0
        self._drop = 0
        self._errors: list[int] = []
        self._short = 0
        self._short_fraction = 1.0
        self._stop = threading.Event()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._thread = threading.Thread(target=self._serve, name="scientifica-sim", daemon=True)

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> ScientificaSimulator:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                continue

    # -- faults --------------------------------------------------------------------------
    def garble_next(self, count: int = 1) -> None:
        """The next ``count`` replies are noise (with a terminator)."""
        self._garble += count

    def drop_next(self, count: int = 1) -> None:
        """The next ``count`` commands get no reply at all."""
        self._drop += count

    def error_next(self, errno: int = 4, count: int = 1) -> None:
        """The next ``count`` commands are answered ``E,<errno>`` and not executed."""
        self._errors.extend([errno] * count)

    def short_moves(self, count: int = 1, fraction: float = 0.5) -> None:
        """The next ``count`` moves stop at ``fraction`` of the way (a blocked axis)."""
        self._short = count
        self._short_fraction = fraction

    def disconnect(self) -> None:
        """Pull the cable: the master end closes."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        try:
            os.close(self._master)
        except OSError:
            return

    # -- state ---------------------------------------------------------------------------
    def position_um(self) -> np.ndarray:
        with self._lock:
            return self._position_at(time.monotonic())

    def _position_at(self, now: float) -> np.ndarray:
        offset = self._target_um - self._start_um
        distance = float(np.linalg.norm(offset))
        if distance == 0.0:
            return self._target_um.copy()
        travelled = self._profile.distance_at(now - self._start_s)
        position: np.ndarray = self._start_um + offset * (travelled / distance)
        return position

    def _is_moving(self, now: float) -> bool:
        return now < self._start_s + self._profile.duration_s - self.early_done_s

    def _go(self, target_um: np.ndarray, now: float) -> None:
        self._start_um = self._position_at(now)
        if self._short > 0:
            self._short -= 1
            target_um = self._start_um + (target_um - self._start_um) * self._short_fraction
        self._target_um = target_um
        distance = float(np.linalg.norm(target_um - self._start_um))
        self._profile = plan_trapezoid(distance, self._speed_um_s, self._accel_um_s2)
        self._start_s = now

    # -- serving -------------------------------------------------------------------------
    def _serve(self) -> None:
        pending = b""
        while not self._stop.is_set():
            readable, _, _ = select.select([self._master], [], [], 0.05)
            if not readable:
                continue
            try:
                pending += os.read(self._master, 4096)
            except OSError:
                return
            while b"\r" in pending:
                line, _, pending = pending.partition(b"\r")
                self._handle(line)

    def _client_baudrate(self) -> int:
        return _SPEED_CODES.get(termios.tcgetattr(self._slave)[4], 0)

    def _handle(self, line: bytes) -> None:
        if self._client_baudrate() != self.baudrate:
            self._send(_NOISE[: max(1, len(line) // 2)], len(line))  # framing errors, no \r
            return
        command = line.decode("ascii", errors="replace").strip()
        self.received.append(command)
        if self._drop > 0:
            self._drop -= 1
            return
        if self._errors:
            reply = f"E,{self._errors.pop(0)}"
        else:
            with self._lock:
                reply = self._respond(command, time.monotonic())
        data = reply.encode("ascii") + b"\r"
        if self._garble > 0:
            self._garble -= 1
            data = b"\xff\xfe" + _NOISE + b"\r"
        self._send(data, len(line) + 1)
        if command.startswith("BAUD "):
            self.baudrate = 38400 if command.endswith("38") else 9600

    def _send(self, data: bytes, received_bytes: int) -> None:
        if self.transfer_time and self.baudrate:
            time.sleep((received_bytes + len(data)) * 10.0 / self.baudrate)
        try:
            os.write(self._master, data)
        except OSError:
            self._stop.set()

    def _ticks(self, values: np.ndarray) -> str:
        return "\t".join(str(round(v * self.ticks_per_um)) for v in values)

    def _respond(self, command: str, now: float) -> str:
        name, _, argument = command.partition(" ")
        v3 = self.version == 3
        scale = self.axis_scale
        if command == "scientifica":
            return "Y519"
        if command == "ver":
            return "3.46" if v3 else "2.9"
        if command == ("P" if v3 else "POS") or (v3 and command == "POS"):
            return self._ticks(self._position_at(now))
        if command in ("PX", "PY", "PZ"):
            index = "XYZ".index(command[1])
            return str(round(self._position_at(now)[index] * self.ticks_per_um))
        if command == "S":
            return "7" if self._is_moving(now) else "0"
        if name in ("ABS", "REL"):
            parts = argument.split()
            if len(parts) != 3:
                return "E,2"
            try:
                values = np.array([int(p) for p in parts], dtype=np.float64) / self.ticks_per_um
            except ValueError:
                return "E,3"
            if name == "REL":
                values = values + self._position_at(now)
            self._go(values, now)
            return "A"
        if command == "STOP":
            here = self._position_at(now)
            self._start_um, self._target_um = here, here.copy()
            self._profile = plan_trapezoid(0.0, 1.0, 1.0)
            return "A"
        if name == "TOP":
            if not argument:
                return f"{self._speed_um_s if v3 else self._speed_um_s * 2 * scale:.0f}"
            raw = float(argument)
            if not v3 and not 1000 <= raw <= 50000:
                return "E,4"
            self._speed_um_s = raw if v3 else raw / (2 * scale)
            return "A"
        if name == "ACC":
            if not argument:
                return f"{self._accel_um_s2 if v3 else self._accel_um_s2 * scale / 250:.0f}"
            raw = float(argument)
            self._accel_um_s2 = raw if v3 else raw * 250 / scale
            return "A"
        if command == "UUX" and not v3:
            return f"{-scale:.2f}"
        if command == "USTEP X" and v3:
            return f"{10240 / scale:.0f}"
        if command == "limits":
            return str(self.limit_bits)
        if command == "type":
            return "3.05" if v3 else "1.05"
        if command == "DATE":
            return "PATCHSTAR 3.46\t12/03/2021" if v3 else "PATCHSTAR 2.9\t04/05/2015"
        if name == "desc":
            if argument:
                self.description = argument
                return "A"
            return self.description
        if name == "BAUD" and argument in ("96", "38"):
            return "A"
        return "E,1"


@contextmanager
def running_simulator(**kwargs: object) -> Iterator[ScientificaSimulator]:
    """A started simulator, closed afterwards (``kwargs`` go to the constructor)."""
    simulator = ScientificaSimulator(**kwargs).start()  # type: ignore[arg-type]
    try:
        yield simulator
    finally:
        simulator.close()
