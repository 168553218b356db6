"""The Scientifica serial protocol (PatchStar, MicroStar, LinLab controllers) over a Transport.

ASCII commands end with ``\\r``; so do replies; an error reply is ``E,<n>``. Positions are in
ticks: 10 per µm on version 2 controllers (``POS``), 100 per µm on version 3 (``P``). Speeds:
v2 ``TOP`` = µm/s x 2 x |axis scale| (1000 to 50000), v3 ``TOP`` in µm/s; ``ACC`` likewise
(v2: µm/s² x |axis scale| / 250).

The wire knows commands and replies, never motion policy (that is ``driver.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

from patchpilot.hardware._protocol import CommunicationError

__all__ = [
    "BAUD_RATES",
    "ScientificaDisconnected",
    "ScientificaErrorReply",
    "ScientificaGarbled",
    "ScientificaTimeout",
    "ScientificaWire",
    "SerialTransport",
    "Transport",
    "connect",
]

T = TypeVar("T")
BAUD_RATES = (9600, 38400)
IDENTITY_REPLY = "Y519"
_V2_SPEED_RANGE = (1000.0, 50000.0)


class ScientificaTimeout(CommunicationError):
    """No complete reply in time."""


class ScientificaGarbled(CommunicationError):
    """A reply that is not what the command answers."""


class ScientificaDisconnected(CommunicationError):
    """The serial port went away."""


class ScientificaErrorReply(CommunicationError):
    """The controller answered ``E,<n>``."""

    def __init__(self, message: str, errno: int) -> None:
        super().__init__(message)
        self.errno = errno


class Transport(Protocol):
    """Bytes in and out of a serial line."""

    @property
    def baudrate(self) -> int: ...

    def write(self, data: bytes) -> None:
        """Send bytes; raises ``ScientificaDisconnected``."""
        ...

    def read_until(self, terminator: bytes, timeout_s: float) -> bytes:
        """Bytes up to and including ``terminator``, or what arrived before the timeout."""
        ...

    def discard_input(self) -> None:
        """Drop whatever is waiting to be read."""
        ...

    def close(self) -> None: ...


class SerialTransport:
    """A ``Transport`` over pyserial (any port or URL ``serial.serial_for_url`` opens).

    Raises
    ------
    ScientificaDisconnected
        The port cannot be opened.
    """

    def __init__(self, port: str, baudrate: int) -> None:
        import serial

        self._serial_error = serial.SerialException
        try:
            self._port = serial.serial_for_url(port, baudrate=baudrate, timeout=0.1)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ScientificaDisconnected(f"cannot open serial port {port}: {exc}") from None
        self.port = port

    @property
    def baudrate(self) -> int:
        return int(self._port.baudrate)

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
        except (self._serial_error, OSError) as exc:
            raise ScientificaDisconnected(f"{self.port}: write failed ({exc})") from None

    def read_until(self, terminator: bytes, timeout_s: float) -> bytes:
        try:
            self._port.timeout = timeout_s
            return bytes(self._port.read_until(terminator))
        except (self._serial_error, OSError) as exc:
            raise ScientificaDisconnected(f"{self.port}: read failed ({exc})") from None

    def discard_input(self) -> None:
        try:
            self._port.reset_input_buffer()
        except (self._serial_error, OSError) as exc:
            raise ScientificaDisconnected(f"{self.port}: flush failed ({exc})") from None

    def close(self) -> None:
        try:
            self._port.close()
        except (self._serial_error, OSError):
            return


class ScientificaWire:
    """Commands and replies to one controller; thread-safe (one exchange at a time).

    Parameters
    ----------
    transport
        The serial line (already at the controller's baud rate).
    timeout_s
        How long to wait for a reply.
    on_command
        Called with every state-changing command sent (for the event log).
    """

    def __init__(
        self,
        transport: Transport,
        timeout_s: float = 0.5,
        on_command: Callable[[str], None] | None = None,
    ) -> None:
        self.transport = transport
        self.timeout_s = timeout_s
        self._on_command = on_command
        self._lock = threading.Lock()
        self.version = 0.0
        self.ticks_per_um = 10
        self.axis_scale = 1.0

    # -- exchanges -----------------------------------------------------------------------
    def query(self, command: str, timeout_s: float | None = None) -> str:
        """Send one command and return its reply (without ``\\r``).

        Raises
        ------
        ScientificaTimeout, ScientificaGarbled, ScientificaErrorReply, ScientificaDisconnected
        """
        wait_s = self.timeout_s if timeout_s is None else timeout_s
        with self._lock:
            self.transport.write(command.encode("ascii") + b"\r")
            reply = self.transport.read_until(b"\r", wait_s)
            if not reply.endswith(b"\r"):
                self.transport.discard_input()  # a late reply must not answer the next command
                got = f" (got {reply!r})" if reply else ""
                raise ScientificaTimeout(f"no reply to {command!r} within {wait_s:.2f} s{got}")
            try:
                text = reply[:-1].decode("ascii").strip()
            except UnicodeDecodeError:
                self.transport.discard_input()
                raise ScientificaGarbled(f"garbled reply {reply!r} to {command!r}") from None
        if text.startswith("E,"):
            try:
                errno = int(text[2:])
            except ValueError:
                raise ScientificaGarbled(f"garbled error reply {text!r} to {command!r}") from None
            raise ScientificaErrorReply(f"controller error {errno} for {command!r}", errno)
        return text

    def request(self, command: str, parse: Callable[[str], T], attempts: int = 2) -> T:
        """``query`` and ``parse`` the reply, retrying timeouts and garbled replies.

        Only for commands that are safe to repeat (queries, ``ABS``, ``STOP``, settings).

        Raises
        ------
        CommunicationError
            The last attempt's error; error replies and disconnects are never retried.
        """
        error: CommunicationError | None = None
        for _ in range(max(1, attempts)):
            try:
                reply = self.query(command)
            except (ScientificaTimeout, ScientificaGarbled) as exc:
                error = exc
                continue
            try:
                return parse(reply)
            except (ValueError, IndexError):
                error = ScientificaGarbled(f"unexpected reply {reply!r} to {command!r}")
                with self._lock:
                    self.transport.discard_input()
        assert error is not None
        raise error

    def command(self, command: str, attempts: int = 2) -> None:
        """Send a state-changing command that the controller acknowledges with ``A``."""
        if self._on_command is not None:
            self._on_command(command)
        self.request(command, _expect_ack, attempts)

    # -- the protocol --------------------------------------------------------------------
    def read_version(self) -> float:
        """``ver``: the controller version; sets ticks per µm (v2: 10, v3: 100)."""
        self.version = self.request("ver", float)
        major = int(self.version)
        if major not in (2, 3):
            raise ScientificaGarbled(f"unsupported controller version {self.version}")
        self.ticks_per_um = 100 if major >= 3 else 10
        scale_command = "USTEP X" if major >= 3 else "UUX"
        self.axis_scale = abs(self.request(scale_command, float)) or 1.0
        return self.version

    def position_um(self) -> tuple[float, float, float]:
        """``P`` (v3) or ``POS`` (v2), converted from ticks to µm."""
        ticks = self.request("P" if self.version >= 3 else "POS", _three_ints)
        return (
            ticks[0] / self.ticks_per_um,
            ticks[1] / self.ticks_per_um,
            ticks[2] / self.ticks_per_um,
        )

    def is_moving(self) -> bool:
        """``S``: non-zero while any axis moves."""
        return self.request("S", int) != 0

    def move_abs_um(self, target_um: tuple[float, ...]) -> None:
        """``ABS x y z`` in ticks (safe to repeat)."""
        ticks = " ".join(str(round(v * self.ticks_per_um)) for v in target_um)
        self.command(f"ABS {ticks}")

    def move_rel_um(self, delta_um: tuple[float, ...]) -> None:
        """``REL dx dy dz`` in ticks (never retried: a repeat would move twice)."""
        ticks = " ".join(str(round(v * self.ticks_per_um)) for v in delta_um)
        self.command(f"REL {ticks}", attempts=1)

    def stop(self) -> None:
        self.command("STOP", attempts=3)

    def speed_um_s(self) -> float:
        """``TOP`` in µm/s."""
        raw = self.request("TOP", float)
        return raw if self.version >= 3 else raw / (2.0 * self.axis_scale)

    def set_speed_um_s(self, speed_um_s: float) -> None:
        """``TOP`` from µm/s (v2 values are clamped to the controller's 1000-50000)."""
        if self.version >= 3:
            self.command(f"TOP {speed_um_s:.1f}")
            return
        raw = min(max(speed_um_s * 2.0 * self.axis_scale, _V2_SPEED_RANGE[0]), _V2_SPEED_RANGE[1])
        self.command(f"TOP {raw:.0f}")

    def min_speed_um_s(self) -> float:
        """The slowest ``TOP`` the controller accepts (µm/s); 0 if it has no floor."""
        return 0.0 if self.version >= 3 else _V2_SPEED_RANGE[0] / (2.0 * self.axis_scale)

    def acceleration_um_s2(self) -> float:
        raw = self.request("ACC", float)
        return raw if self.version >= 3 else raw * 250.0 / self.axis_scale

    def limit_switches(self) -> int:
        """``limits``: bit 2*axis = low end, 2*axis+1 = high end."""
        return self.request("limits", int)

    def identity(self) -> dict[str, str]:
        """``type``, ``DATE`` and ``desc``."""
        return {
            "type": self.request("type", str),
            "date": self.request("DATE", str),
            "desc": self.request("desc", str),
        }


def _expect_ack(reply: str) -> None:
    if reply != "A":
        raise ValueError(reply)


def _three_ints(reply: str) -> tuple[int, int, int]:
    parts = reply.split("\t")
    if len(parts) != 3:
        raise ValueError(reply)
    return int(parts[0]), int(parts[1]), int(parts[2])


def _probe(wire: ScientificaWire, timeout_s: float) -> str:
    """Ask ``scientifica``: a short try, then a full one (noise from another rate may garble
    the first)."""
    try:
        return wire.query("scientifica", min(0.2, timeout_s))
    except (ScientificaTimeout, ScientificaGarbled):
        return wire.query("scientifica", timeout_s)


def connect(
    port: str,
    baudrate: int | None = None,
    timeout_s: float = 0.5,
    *,
    transport_factory: Callable[[str, int], Transport] = SerialTransport,
    on_command: Callable[[str], None] | None = None,
) -> ScientificaWire:
    """Open ``port``, find the baud rate (9600 then 38400) and read the controller version.

    ``baudrate`` is tried first when given (controllers return to 9600 after a power cycle,
    so the other rate is always tried too).

    Raises
    ------
    CommunicationError
        The port cannot be opened, nothing answers at either rate, or what answers is not a
        Scientifica controller.
    """
    rates = list(BAUD_RATES)
    if baudrate is not None:
        rates.sort(key=lambda rate: rate != baudrate)
    tried: list[str] = []
    for rate in rates:
        transport = transport_factory(port, rate)
        wire = ScientificaWire(transport, timeout_s, on_command)
        try:
            identity = _probe(wire, timeout_s)
        except (ScientificaTimeout, ScientificaGarbled, ScientificaErrorReply) as exc:
            tried.append(f"{rate} baud: {exc}")
            transport.close()
            continue
        except CommunicationError:
            transport.close()
            raise
        if identity != IDENTITY_REPLY:
            transport.close()
            raise ScientificaGarbled(
                f"{port} answered {identity!r} to 'scientifica' at {rate} baud, not "
                f"{IDENTITY_REPLY!r}: is this a Scientifica controller?"
            )
        try:
            wire.read_version()
        except CommunicationError:
            transport.close()
            raise
        return wire
    raise ScientificaTimeout(
        f"no Scientifica controller answered on {port} ({'; '.join(tried)}); check the cable "
        f"and port name, and close LinLab (it holds the port)"
    )
