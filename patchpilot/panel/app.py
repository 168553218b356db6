"""The panel's web application (FastAPI): the page, the HTTP commands and the websocket.

``create_app(backend)`` serves:

- ``GET /``: the page (``static/``, plain HTML/CSS/JS); ``GET /api/hello``, ``/api/view``,
  ``/api/events``, ``/api/frame.jpg``: snapshots.
- ``POST /api/stop_all``: STOP ALL; never rate-limited, needs nothing but the token.
- ``POST /api/{start_approach,pause_all,resume_all,rearm}``.
- ``POST /api/pipettes/{name}/{take_over,release,calibrate,confirm_calibration,retract,home,
  clear_fault}``, ``POST /api/pipettes/{name}/jog`` (:class:`~patchpilot.panel.commands.JogRequest`,
  rate-limited per pipette), ``POST /api/pipettes/{name}/target``.
- ``POST /api/nogo_zones`` (add), ``DELETE /api/nogo_zones`` (clear).
- ``WS /ws``: live views, frames and events (see ``live.py``).

Answers are ``{"ok": true, ...}`` or ``{"ok": false, "error": "<why>"}`` with 400 (bad value,
refused move or plan), 401 (token), 403 (sent from another site's page), 404 (unknown
pipette), 409 (not possible in this state), 422 (malformed or non-finite input), 429 (jog
rate), 500 (unexpected), 501 (the backend cannot), 502 (device error). Every command,
accepted or refused, is recorded in the event log (source ``panel``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.websockets import WebSocket
from transitions import MachineError

from patchpilot.config import CylinderZone
from patchpilot.events import EventKind
from patchpilot.hardware import ManipulatorError, MoveRefused
from patchpilot.panel._protocol import PanelBackend
from patchpilot.panel.backend import Unsupported
from patchpilot.panel.commands import JogRequest, TargetRequest, ZoneRequest
from patchpilot.panel.guard import (
    TOKEN_HEADER,
    JogRateLimiter,
    is_cross_origin,
    is_loopback,
    loopback_hosts,
    token_matches,
)
from patchpilot.panel.live import LiveFeed
from patchpilot.panel.views import (
    ImageGeometry,
    encode_frame,
    json_object,
    jsonable,
    panel_events,
    pipette_info,
)
from patchpilot.panel.views import view_payload as build_view

__all__ = ["GLOBAL_COMMANDS", "PIPETTE_COMMANDS", "create_app"]

STATIC_DIR = Path(__file__).parent / "static"
GLOBAL_COMMANDS = ("start_approach", "pause_all", "resume_all", "rearm")
PIPETTE_COMMANDS = (
    "take_over",
    "release",
    "calibrate",
    "confirm_calibration",
    "retract",
    "home",
    "clear_fault",
)


class Refused(Exception):
    """A command refused by the panel itself (status code and message)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


def _status_for(exc: BaseException) -> int:
    if isinstance(exc, Refused):
        return exc.status_code
    if isinstance(exc, KeyError):
        return 404
    if isinstance(exc, Unsupported):
        return 501
    if isinstance(exc, (ValueError, MoveRefused)):
        return 400
    if isinstance(exc, ManipulatorError):
        return 502
    return 409  # MachineError, RuntimeError: not possible now


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ())[1:]) or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def create_app(
    backend: PanelBackend,
    *,
    token: str | None = None,
    bind_host: str = "127.0.0.1",
    max_jogs_per_s: float | None = None,
    update_hz: float = 20.0,
    allowed_hosts: list[str] | None = None,
    rate_clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """The panel application for one running experiment.

    Parameters
    ----------
    backend
        The experiment (see :class:`~patchpilot.panel.PanelBackend`).
    token
        Required on every API call and the websocket when set.
    bind_host
        Where the server listens; any address but loopback requires ``token``.
    max_jogs_per_s
        Jogs per second and pipette; None: ``backend.config.panel.max_jogs_per_s``.
    update_hz
        Live views per second on the websocket.
    allowed_hosts
        ``Host`` headers accepted; None: loopback names when bound to loopback, else any.
    rate_clock
        Monotonic seconds for the jog rate limit.

    Raises
    ------
    ValueError
        A non-loopback ``bind_host`` without a token, or a bad rate.
    """
    if not is_loopback(bind_host) and not token:
        raise ValueError(f"binding {bind_host} (not loopback) requires a token")
    limiter = JogRateLimiter(
        max_jogs_per_s if max_jogs_per_s is not None else backend.config.panel.max_jogs_per_s,
        rate_clock,
    )
    log = backend.log
    stop_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="panel-stop")
    geometry = ImageGeometry.of  # alias: pixels <-> µm of the frame on screen

    async def run_stop_all(via: str) -> dict[str, Any]:
        clicked_s = time.time()
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(stop_pool, backend.stop_all)
        failed = {name: error for name, error in results.items() if error is not None}
        log.record(
            EventKind.OPERATOR,
            "panel",
            "stop all",
            via=via,
            received_t=clicked_s,
            failed=failed,
        )
        return {"ok": True, "command": "stop_all", "results": dict(results), "failed": failed}

    def hello() -> dict[str, Any]:
        config = backend.config
        return json_object(
            {
                "type": "hello",
                "rig": config.name,
                "pipettes": pipette_info(backend),
                "capabilities": dict(backend.capabilities()),
                "max_jogs_per_s": limiter.max_per_window,
                "token_required": token is not None,
                "update_hz": update_hz,
                "min_clearance_um": config.safety.min_clearance_um,
                "frame_width_px": config.microscope.frame_width_px,
                "frame_height_px": config.microscope.frame_height_px,
            }
        )

    feed = LiveFeed(backend, hello, run_stop_all, update_hz)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        feed.closing.set()
        stop_pool.shutdown(wait=False)

    app = FastAPI(title="patchpilot panel", lifespan=lifespan, docs_url=None, redoc_url=None)
    hosts = allowed_hosts
    if hosts is None and is_loopback(bind_host):
        hosts = loopback_hosts()
    if hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts)

    def refuse(
        command: str,
        status_code: int,
        error: str,
        pipette: str | None = None,
        request: dict[str, Any] | None = None,
        path: str | None = None,
    ) -> JSONResponse:
        log.record(
            EventKind.OPERATOR,
            "panel",
            f"refused {command}",
            reason=error,
            status_code=status_code,
            pipette=pipette,
            request=request,
            path=path,
        )
        return JSONResponse({"ok": False, "command": command, "error": error}, status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        command = request.url.path.rsplit("/", 1)[-1]
        return refuse(command, 422, _validation_message(exc), path=request.url.path)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return refuse(request.url.path.rsplit("/", 1)[-1], exc.status_code, str(exc.detail))

    def check_token(request: Request) -> None:
        given = request.headers.get(TOKEN_HEADER) or request.query_params.get("token")
        if not token_matches(token, given):
            raise HTTPException(401, "missing or wrong token")

    def check_origin(request: Request) -> None:
        if is_cross_origin(request.headers):
            raise HTTPException(403, "refused: sent from another site's page")

    # STOP ALL only needs the token: stopping is always safe, whoever asks.
    stop_router = APIRouter(prefix="/api", dependencies=[Depends(check_token)])
    api = APIRouter(prefix="/api", dependencies=[Depends(check_token), Depends(check_origin)])

    def execute(
        command: str,
        action: Callable[[], Any],
        pipette: str | None = None,
        request: dict[str, Any] | None = None,
    ) -> JSONResponse:
        try:
            result = action()
        except (
            Refused,
            KeyError,
            ValueError,
            ManipulatorError,
            MachineError,
            RuntimeError,
        ) as exc:
            return refuse(command, _status_for(exc), _message(exc), pipette, request)
        except Exception as exc:  # a bug below: tell the operator rather than hang up
            log.record(
                EventKind.FAULT, "panel", f"{command} failed", error=repr(exc), pipette=pipette
            )
            return refuse(command, 500, f"{type(exc).__name__}: {exc}", pipette, request)
        log.record(EventKind.OPERATOR, "panel", command, pipette=pipette, request=request)
        body: dict[str, Any] = {"ok": True, "command": command}
        if isinstance(result, str) and result:
            body["message"] = result
        return JSONResponse(jsonable(body))

    async def in_thread(function: Callable[[], JSONResponse]) -> JSONResponse:
        return await asyncio.to_thread(function)

    @stop_router.post("/stop_all")
    async def stop_all() -> JSONResponse:
        return JSONResponse(jsonable(await run_stop_all("http")))

    def global_command(command: str) -> Callable[[], Awaitable[JSONResponse]]:
        async def handler() -> JSONResponse:
            action = getattr(backend, command)
            return await in_thread(lambda: execute(command, action))

        handler.__name__ = command
        return handler

    for command in GLOBAL_COMMANDS:
        api.post(f"/{command}")(global_command(command))

    @api.post("/pipettes/{name}/jog")
    async def jog(name: str, request: JogRequest) -> JSONResponse:
        def action() -> None:
            if name not in backend.status():
                raise KeyError(f"no pipette {name!r}")
            if not limiter.allow(name):
                raise Refused(
                    429, f"{name}: more than {limiter.max_per_window} jogs per second; slow down"
                )
            backend.jog(name, request.axis, request.step_um, request.speed_um_s)

        return await in_thread(lambda: execute("jog", action, name, request.model_dump()))

    @api.post("/pipettes/{name}/target")
    async def target(name: str, request: TargetRequest) -> JSONResponse:
        def action() -> str:
            if request.is_pixels:
                assert request.x_px is not None and request.y_px is not None
                live = backend.latest_frame()
                shown = geometry(live, backend.config.microscope)
                x_um, y_um = shown.to_um(request.x_px, request.y_px)
                z_um = request.z_um if request.z_um is not None else shown.focus_um
                if z_um is None:
                    raise Refused(409, "no frame yet to take the focus from; give z_um")
            else:
                assert request.x_um is not None and request.y_um is not None
                x_um, y_um, z_um = request.x_um, request.y_um, request.z_um
                assert z_um is not None
            return backend.set_target(name, (x_um, y_um, z_um))

        return await in_thread(
            lambda: execute("target", action, name, request.model_dump(exclude_none=True))
        )

    def pipette_command(command: str) -> Callable[[str], Awaitable[JSONResponse]]:
        async def handler(name: str) -> JSONResponse:
            action = getattr(backend, command)
            return await in_thread(lambda: execute(command, lambda: action(name), name))

        handler.__name__ = command
        return handler

    for command in PIPETTE_COMMANDS:
        api.post(f"/pipettes/{{name}}/{command}")(pipette_command(command))

    @api.post("/nogo_zones")
    async def add_zone(request: ZoneRequest) -> JSONResponse:
        def action() -> None:
            if request.center_px is not None and request.radius_px is not None:
                shown = geometry(backend.latest_frame(), backend.config.microscope)
                center = shown.to_um(*request.center_px)
                radius = request.radius_px * shown.pixel_size_um
            else:
                assert request.center_xy_um is not None and request.radius_um is not None
                center, radius = request.center_xy_um, request.radius_um
            zone = CylinderZone(
                name=request.name,
                center_xy_um=center,
                radius_um=radius,
                z_min_um=request.z_min_um,
                z_max_um=request.z_max_um,
            )
            backend.add_nogo_zone(zone)

        return await in_thread(
            lambda: execute("add_nogo_zone", action, None, request.model_dump(exclude_none=True))
        )

    @api.delete("/nogo_zones")
    async def clear_zones() -> JSONResponse:
        return await in_thread(lambda: execute("clear_nogo_zones", backend.clear_nogo_zones))

    @api.get("/hello")
    async def get_hello() -> JSONResponse:
        return JSONResponse(hello())

    @api.get("/view")
    async def get_view() -> JSONResponse:
        payload = await asyncio.to_thread(build_view, backend, backend.latest_frame())
        return JSONResponse(payload)

    @api.get("/events")
    async def get_events(n: int = 200) -> JSONResponse:
        n = max(1, min(n, 2000))
        return JSONResponse({"events": panel_events(log.tail(n * 5))[-n:]})

    @api.get("/frame.jpg")
    async def get_frame() -> Response:
        live = backend.latest_frame()
        if live is None:
            return JSONResponse({"ok": False, "error": "no frame yet"}, 404)
        data = await asyncio.to_thread(encode_frame, live.frame.image)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    app.include_router(stop_router)
    app.include_router(api)

    @app.websocket("/ws")
    async def websocket(websocket: WebSocket) -> None:
        given = websocket.headers.get(TOKEN_HEADER) or websocket.query_params.get("token")
        reason = None
        if not token_matches(token, given):
            reason = "token"
        elif is_cross_origin(websocket.headers):
            reason = f"cross-origin ({websocket.headers.get('origin')})"
        if reason is not None:
            log.record(EventKind.OPERATOR, "panel", "refused websocket", reason=reason)
            await websocket.close(code=1008)
            return
        await websocket.accept()
        await feed.serve(websocket)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.state.feed = feed
    app.state.backend = backend
    return app
