"""Run the panel: uvicorn on a background thread of the process that runs the experiment.

``serve_panel(backend)`` binds ``config.panel.host:port`` (127.0.0.1 by default; port 0
picks a free one), starts serving and returns a :class:`PanelServer` with the URL to open.
Binding any other address generates a token (printed with the URL) unless one is given.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
from collections.abc import Callable
from typing import TextIO
from urllib.parse import quote

import uvicorn

from patchpilot.events import EventKind
from patchpilot.panel._protocol import PanelBackend
from patchpilot.panel.app import create_app
from patchpilot.panel.backend import ControllerBackend, ExperimentLike
from patchpilot.panel.guard import is_loopback, new_token

__all__ = ["PanelServer", "serve_panel"]

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket (SO_REUSEADDR, so a restarted panel gets its port back)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise OSError(f"panel cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


class PanelServer:
    """The panel's web server running on a daemon thread.

    Parameters
    ----------
    backend
        The running experiment.
    host, port
        Where to listen (port 0: a free port).
    token
        Required on every command; generated when binding a non-loopback address.
    update_hz
        Live updates per second.

    Raises
    ------
    OSError
        The address cannot be bound (in use, no such interface).
    TimeoutError
        The server did not start in time.
    """

    def __init__(
        self,
        backend: PanelBackend,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        update_hz: float = 20.0,
    ) -> None:
        if token is None and not is_loopback(host):
            token = new_token()
        self.backend = backend
        self.host = host
        self.token = token
        self.app = create_app(backend, token=token, bind_host=host, update_hz=update_hz)
        self._socket = _bind(host, port)
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
            ws_ping_interval=5.0,
            ws_ping_timeout=5.0,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._run, name=f"patchpilot-panel-{self.port}", daemon=True
        )
        self._error: BaseException | None = None
        self._on_stop: list[Callable[[], None]] = []
        self._thread.start()
        self._wait_started()
        backend.log.record(EventKind.INFO, "panel", "serving", url=self.base_url)

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # reported by _wait_started / stop
            self._error = exc

    def _wait_started(self) -> None:
        started = threading.Event()

        def poll() -> None:
            while self._thread.is_alive() and not self._server.started:
                started.wait(0.01)
            started.set()

        threading.Thread(target=poll, daemon=True).start()
        if not started.wait(_START_TIMEOUT_S) or not self._server.started:
            self.stop()
            raise TimeoutError(
                f"panel did not start within {_START_TIMEOUT_S:g} s"
                + (f": {self._error}" if self._error else "")
            )

    @property
    def base_url(self) -> str:
        host = f"[{self.host.strip('[]')}]" if ":" in self.host.strip("[]") else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The address to open (with the token when one is needed)."""
        return self.base_url + (f"/?token={quote(self.token)}" if self.token else "/")

    @property
    def is_running(self) -> bool:
        return self._thread.is_alive() and bool(self._server.started)

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once the server has stopped."""
        self._on_stop.append(callback)

    def stop(self, timeout_s: float = _STOP_TIMEOUT_S) -> None:
        """Stop serving (pages reconnect when a panel is served again); idempotent."""
        self._server.should_exit = True
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout_s)
        with contextlib.suppress(OSError):
            self._socket.close()
        while self._on_stop:
            with contextlib.suppress(Exception):
                self._on_stop.pop()()

    def __enter__(self) -> PanelServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_panel(
    target: PanelBackend | ExperimentLike,
    *,
    host: str | None = None,
    port: int | None = None,
    token: str | None = None,
    announce: bool = True,
    stream: TextIO | None = None,
) -> PanelServer:
    """Serve the panel for a running experiment; returns at once (the server runs on a thread).

    Parameters
    ----------
    target
        A ``patchpilot.experiment.Experiment`` (wrapped in a
        :class:`~patchpilot.panel.ControllerBackend`, released again by ``stop``), or any
        :class:`~patchpilot.panel.PanelBackend`.
    host, port
        None: ``config.panel.host`` and ``config.panel.port``.
    token
        None: generated when binding a non-loopback address, else not required.
    announce, stream
        Print the URL (and token) to ``stream`` (None: the current standard output).

    Raises
    ------
    OSError
        The address cannot be bound.
    TimeoutError
        The server did not start.
    """
    owned: ControllerBackend | None = None
    if isinstance(target, PanelBackend):
        backend: PanelBackend = target
    else:
        backend = owned = ControllerBackend.from_experiment(target)
    settings = backend.config.panel
    try:
        server = PanelServer(
            backend,
            host=host if host is not None else settings.host,
            port=port if port is not None else settings.port,
            token=token,
        )
    except BaseException:
        if owned is not None:
            owned.close()
        raise
    if owned is not None:
        server.on_stop(owned.close)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    if announce:
        out = stream if stream is not None else sys.stdout
        print(f"patchpilot panel: {server.url}", file=out)
        if server.token is not None:
            print(f"panel token (needed by every command): {server.token}", file=out)
        out.flush()
    return server
