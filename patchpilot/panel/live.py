"""The live websocket: views, frames and events out; STOP ALL in.

Server to page, ``update_hz`` times a second:

- a text ``{"type": "view", ...}`` (cards, figures, overlays in pixels; see ``views.py``);
- when the frame changed, a binary message: the frame as JPEG (it belongs to the view just
  sent before it);
- ``{"type": "events", "events": [...]}`` with the new log records.

Page to server: ``{"type": "stop_all"}`` (answered by ``{"type": "ack", ...}``) and
``{"type": "ping"}``. Every other command goes through HTTP (clear status codes); STOP ALL is
also ``POST /api/stop_all``, so it works while the websocket is down.

Views and JPEGs are computed once per tick and frame for every connected page, on worker
threads (snapshots take the controller's lock; encoding takes milliseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from patchpilot.panel.views import encode_frame, panel_events, view_payload

if TYPE_CHECKING:
    from patchpilot.events import Event
    from patchpilot.panel._protocol import LiveFrame, PanelBackend

__all__ = ["LiveFeed"]

_EVENT_TAIL = 200
_MAX_QUEUED_EVENTS = 2000


class LiveFeed:
    """Shared view and frame caches plus the per-connection websocket loop.

    Parameters
    ----------
    backend
        The running experiment.
    hello
        The first message each page gets (pipettes, capabilities, settings).
    stop_all
        Runs STOP ALL (the app's path, shared with ``POST /api/stop_all``).
    update_hz
        Views (and frames, when new) sent per second.
    """

    def __init__(
        self,
        backend: PanelBackend,
        hello: Callable[[], dict[str, Any]],
        stop_all: Callable[[str], Awaitable[Mapping[str, Any]]],
        update_hz: float = 20.0,
    ) -> None:
        if not 1.0 <= update_hz <= 60.0:
            raise ValueError(f"update_hz must be within 1 to 60, got {update_hz}")
        self.backend = backend
        self._hello = hello
        self._stop_all = stop_all
        self.period_s = 1.0 / update_hz
        self._view: tuple[float, dict[str, Any]] | None = None
        self._view_lock = asyncio.Lock()
        self._jpeg: tuple[tuple[int, float], bytes] | None = None
        self._jpeg_lock = asyncio.Lock()
        self.closing = asyncio.Event()

    async def view(self) -> tuple[dict[str, Any], LiveFrame | None]:
        """The current view (recomputed at most once per half period for all pages)."""
        async with self._view_lock:
            now = time.monotonic()
            live = self.backend.latest_frame()
            if self._view is None or now - self._view[0] >= self.period_s / 2.0:
                payload = await asyncio.to_thread(view_payload, self.backend, live)
                self._view = (now, payload)
            return self._view[1], live

    async def jpeg(self, live: LiveFrame) -> bytes:
        """The JPEG of ``live``'s frame (encoded once)."""
        async with self._jpeg_lock:
            key = _frame_key(live)
            if self._jpeg is None or self._jpeg[0] != key:
                data = await asyncio.to_thread(encode_frame, live.frame.image)
                self._jpeg = (key, data)
            return self._jpeg[1]

    async def serve(self, websocket: WebSocket) -> None:
        """Run one page's connection until it closes (or the server shuts down)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=_MAX_QUEUED_EVENTS)

        def on_event(event: Event) -> None:
            with contextlib.suppress(RuntimeError):  # the loop may be closing
                loop.call_soon_threadsafe(_put_latest, queue, event)

        unsubscribe = self.backend.log.subscribe(on_event)
        try:
            await websocket.send_json(self._hello())
            tail = panel_events(self.backend.log.tail(_EVENT_TAIL * 5))[-_EVENT_TAIL:]
            await websocket.send_json({"type": "events", "events": tail, "initial": True})
            sender = asyncio.create_task(self._send_loop(websocket, queue))
            receiver = asyncio.create_task(self._receive_loop(websocket))
            closing = asyncio.create_task(self.closing.wait())
            done, pending = await asyncio.wait(
                {sender, receiver, closing}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for task in done:
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                    task.result()
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the page went away (or the server is shutting down)
        finally:
            unsubscribe()
            with contextlib.suppress(Exception):
                await websocket.close(code=1001)

    async def _send_loop(self, websocket: WebSocket, queue: asyncio.Queue[Event]) -> None:
        last_frame_key: tuple[int, float] | None = None
        while True:
            started = time.monotonic()
            payload, live = await self.view()
            await websocket.send_json(payload)
            if live is not None and _frame_key(live) != last_frame_key:
                await websocket.send_bytes(await self.jpeg(live))
                last_frame_key = _frame_key(live)
            events: list[Event] = []
            while not queue.empty():
                events.append(queue.get_nowait())
            shown = panel_events(events)
            if shown:
                await websocket.send_json({"type": "events", "events": shown})
            await asyncio.sleep(max(0.0, self.period_s - (time.monotonic() - started)))

    async def _receive_loop(self, websocket: WebSocket) -> None:
        while True:
            message = await websocket.receive_json()
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == "stop_all":
                results = await self._stop_all("websocket")
                await websocket.send_json({"type": "ack", "command": "stop_all", **results})
            elif kind == "ping":
                await websocket.send_json({"type": "pong", "t": message.get("t")})
            else:
                await websocket.send_json(
                    {"type": "error", "error": f"unknown message type {kind!r}; use HTTP"}
                )


def _frame_key(live: LiveFrame) -> tuple[int, float]:
    return (live.frame.index, live.frame.timestamp_s)


def _put_latest(queue: asyncio.Queue[Event], event: Event) -> None:
    """Queue an event, dropping the oldest when a slow page has fallen far behind."""
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
    queue.put_nowait(event)
