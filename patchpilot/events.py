"""The event log: one JSON line per record, flushed as it is written.

Every part of patchpilot records what happened here: decisions, commands sent to hardware,
faults and operator actions. A record is flushed to the OS before ``record`` returns, so a
crash of the process loses nothing already recorded.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from enum import Enum
from pathlib import Path
from typing import IO, Any

__all__ = ["Event", "EventKind", "EventLog", "read_events"]


class EventKind(str, Enum):
    """What a record is about; free-form details travel in its fields."""

    DECISION = "decision"
    COMMAND = "command"
    FAULT = "fault"
    OPERATOR = "operator"
    TRANSITION = "transition"
    LOCALISATION = "localisation"
    MATCH = "match"
    CALIBRATION = "calibration"
    PLAN = "plan"
    FRAME = "frame"
    INFO = "info"


Event = dict[str, Any]
Subscriber = Callable[[Event], None]


def _jsonable(value: Any) -> Any:
    """Make numpy scalars, tuples, enums, paths and non-finite floats JSON-safe."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _jsonable(value.tolist())
    if isinstance(value, Path):
        return str(value)
    return repr(value)


class EventLog:
    """Thread-safe JSON-lines log with an in-memory tail and live subscribers.

    Parameters
    ----------
    path
        File to append to; None keeps records in memory only (tests, dry previews).
    tail_size
        How many recent records ``tail`` can return.
    clock
        Returns seconds; defaults to ``time.time``. Records carry it as ``t``.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        tail_size: int = 2000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._tail: deque[Event] = deque(maxlen=tail_size)
        self._subscribers: list[Subscriber] = []
        self._clock = clock
        self._sequence = 0
        self._file: IO[str] | None = None
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._path.open("a", encoding="utf-8", buffering=1)

    @property
    def path(self) -> Path | None:
        return self._path

    def record(self, kind: EventKind | str, source: str, message: str = "", **fields: Any) -> Event:
        """Write one record and return it.

        Parameters
        ----------
        kind
            An ``EventKind`` (or its value).
        source
            Who is speaking: a pipette name, ``"coordinator"``, ``"panel"``, a driver id.
        message
            A short human sentence; details go into ``fields``.
        """
        kind_value = kind.value if isinstance(kind, EventKind) else str(kind)
        with self._lock:
            self._sequence += 1
            event: Event = {
                "seq": self._sequence,
                "t": self._clock(),
                "kind": kind_value,
                "source": source,
                "message": message,
            }
            event.update({k: _jsonable(v) for k, v in fields.items()})
            if self._file is not None:
                self._file.write(json.dumps(event, separators=(",", ":")) + "\n")
                self._file.flush()
            self._tail.append(event)
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            with contextlib.suppress(Exception):
                subscriber(event)
        return event

    def tail(self, n: int = 100, kind: EventKind | str | None = None) -> list[Event]:
        """The last ``n`` records, optionally of one kind, oldest first."""
        wanted = kind.value if isinstance(kind, EventKind) else kind
        with self._lock:
            events = [e for e in self._tail if wanted is None or e["kind"] == wanted]
        return events[-n:] if n > 0 else []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for every later record; returns an unsubscribe function."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_events(path: str | Path) -> Iterator[Event]:
    """Read records back; a truncated last line (a crash mid-write) is skipped."""
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue
