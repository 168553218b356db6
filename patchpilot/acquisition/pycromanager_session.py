"""Run a REAL pycromanager acquisition (Python backend) on an in-process pymmcore core.

Every trap found running pycromanager 1.0.2 this way is handled here, and only here
(see ``shared/reference/pycromanager.md``):

- the Python backend needs ``mmpycorex.launcher._PYMMCORES`` non-empty and the process-wide
  ``Engine`` singleton built on a core with snake_case methods plus ``get_tagged_image``,
  ``pop_next_tagged_image`` and ``TaggedImage``: :class:`SnakeCaseCore` is that facade;
- the ``Engine`` singleton outlives acquisitions: the session shuts it down and deletes it;
- MMCore's C++ callback thread can call into Python during interpreter exit and abort the
  process (rc 134): the session unregisters the callback on exit;
- ``abort()`` then ``await_completion()`` hangs: aborting also calls ``mark_finished()``,
  and every wait has a timeout;
- the Python backend calls hardware hooks with one argument, sometimes a LIST of events:
  :func:`one_argument_hook` adapts any one- or two-argument hook;
- an event containing ``"tags"`` crashes the event thread: :func:`check_event` refuses it.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "AcquisitionError",
    "PycroManagerSession",
    "SnakeCaseCore",
    "check_event",
    "one_argument_hook",
    "release_core_callbacks",
]

_CAMEL_BOUNDARY_1 = re.compile(r"(.)([A-Z][a-z]+)")
_CAMEL_BOUNDARY_2 = re.compile(r"([a-z0-9])([A-Z])")


class AcquisitionError(RuntimeError):
    """An acquisition could not be started, finished or stopped; the message says why."""


def _snake(name: str) -> str:
    # The same conversion mmpycorex applies to CMMCore (getXYStageDevice -> get_xy_stage_device).
    return _CAMEL_BOUNDARY_2.sub(r"\1_\2", _CAMEL_BOUNDARY_1.sub(r"\1_\2", name)).lower()


class _TaggedImage:
    """pycromanager's TaggedImage shape: ``tags`` (dict) and ``pix`` (array)."""

    def __init__(self, tags: dict[str, Any] | None, pix: Any) -> None:
        self.tags = tags
        self.pix = pix


class SnakeCaseCore:
    """A pymmcore(-plus) core seen through pycromanager's snake_case API.

    Attribute look-ups go to the core's camelCase method of the same snake name, or to the
    core itself (the engine also calls a few camelCase names directly).
    """

    def __init__(self, core: Any) -> None:
        self.core = core
        self.TaggedImage = _TaggedImage
        self._names = {
            _snake(name): name
            for name in dir(core)
            if not name.startswith("_") and any(c.isupper() for c in name)
        }

    def __getattr__(self, name: str) -> Any:
        camel = self.__dict__["_names"].get(name)
        return getattr(self.__dict__["core"], camel if camel is not None else name)

    def get_tagged_image(
        self, cam_index: int, camera: str, height: int, width: int, *_: Any
    ) -> _TaggedImage:
        """The image just snapped, with the tags the Python backend expects."""
        pix = self.core.getImage()
        tags: dict[str, Any] = {
            "Camera": camera,
            "Height": height,
            "Width": width,
            "CameraChannelIndex": cam_index,
        }
        return _TaggedImage(tags, pix)

    def pop_next_tagged_image(self) -> _TaggedImage:
        """The next image of a running sequence (raises while none is ready)."""
        pix, md = self.core.popNextImageAndMD()
        tags = {str(k): v for k, v in dict(md).items()}
        tags.setdefault("Camera", self.core.getCameraDevice())
        return _TaggedImage(tags, pix)


def check_event(event: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> None:
    """Refuse an acquisition event pycromanager 1.0.2 cannot survive.

    Raises
    ------
    ValueError
        No ``axes``, or a ``tags`` key (it crashes the Python backend's event thread).
    """
    events = [event] if isinstance(event, Mapping) else list(event)
    for item in events:
        if not isinstance(item, Mapping) or "axes" not in item:
            raise ValueError(f"acquisition event {item!r} has no 'axes'")
        if "tags" in item:
            raise ValueError("acquisition events must not carry 'tags' (pycromanager 1.0.2)")


HardwareHook = Callable[..., Any]


def one_argument_hook(hook: HardwareHook, event_queue: Callable[[], Any]) -> Callable[[Any], Any]:
    """Adapt a hardware hook to the Python backend's one-argument call.

    ``hook`` may take ``(event)`` or ``(event, event_queue)``; it is called once per event,
    also when the engine passes a LIST of events (a hardware sequence), and the list is
    rebuilt from what it returns (None cancels that event).
    """
    n_params = len(inspect.signature(hook).parameters)
    if n_params not in (1, 2):
        raise TypeError(f"hardware hook {hook!r} must take 1 or 2 arguments, takes {n_params}")

    def call_one(event: Any) -> Any:
        return hook(event) if n_params == 1 else hook(event, event_queue())

    def adapted(event_or_events: Any) -> Any:
        if isinstance(event_or_events, list):
            kept = [out for out in (call_one(e) for e in event_or_events) if out is not None]
            return kept or None
        return call_one(event_or_events)

    return adapted


def release_core_callbacks(core: Any) -> None:
    """Unregister MMCore's C++ callback so no C++ thread calls Python at interpreter exit."""
    from pymmcore_plus import _pymmcore

    # Already released, or not a CMMCore: nothing to undo.
    with contextlib.suppress(Exception):
        _pymmcore.CMMCore.registerCallback(core, None)


class PycroManagerSession:
    """Make ``core`` the pycromanager Python-backend core for the ``with`` block.

    Only one session may be open in a process (the engine is a singleton). Closing it
    aborts any acquisition still running, shuts the engine down, forgets the core and
    releases its C++ callback.

    Parameters
    ----------
    core
        A ``pymmcore_plus`` core (``UniMMCore`` with pure-Python devices here).
    timeout_s
        Longest wait for an acquisition to finish or abort.
    """

    _lock = threading.Lock()
    _active: PycroManagerSession | None = None

    def __init__(self, core: Any, timeout_s: float = 10.0) -> None:
        self.core = core
        self.facade = SnakeCaseCore(core)
        self.timeout_s = timeout_s
        self._acquisitions: list[Any] = []
        self._open = False

    def __enter__(self) -> PycroManagerSession:
        from mmpycorex import launcher
        from pycromanager.acquisition.acq_eng_py.internal.engine import Engine

        with PycroManagerSession._lock:
            if PycroManagerSession._active is not None or hasattr(Engine, "singleton"):
                raise AcquisitionError(
                    "a pycromanager engine is already running in this process; close the "
                    "other PycroManagerSession first"
                )
            launcher._PYMMCORES.append(self.facade)
            Engine(self.facade)
            PycroManagerSession._active = self
            self._open = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def acquisition(
        self,
        image_process_fn: Callable[..., Any] | None,
        *,
        directory: str | Path | None = None,
        name: str = "patchpilot",
        pre_hardware_hook_fn: HardwareHook | None = None,
        post_hardware_hook_fn: HardwareHook | None = None,
        post_camera_hook_fn: HardwareHook | None = None,
    ) -> Any:
        """Create a started pycromanager ``Acquisition`` (frames saved to NDTiff in
        ``directory`` when given, else kept in RAM)."""
        from pycromanager import Acquisition

        if not self._open:
            raise AcquisitionError("the pycromanager session is not open")
        holder: list[Any] = []

        def queue() -> Any:
            return holder[0]._event_queue if holder else None

        def adapt(hook: HardwareHook | None) -> Callable[[Any], Any] | None:
            return None if hook is None else one_argument_hook(hook, queue)

        acquisition = Acquisition(
            directory=str(directory) if directory is not None else None,
            name=name,
            image_process_fn=image_process_fn,
            pre_hardware_hook_fn=adapt(pre_hardware_hook_fn),
            post_hardware_hook_fn=adapt(post_hardware_hook_fn),
            post_camera_hook_fn=adapt(post_camera_hook_fn),
        )
        holder.append(acquisition)
        self._acquisitions.append(acquisition)
        return acquisition

    def submit(self, acquisition: Any, event: dict[str, Any] | list[dict[str, Any]]) -> None:
        """Submit one event or a list (checked by :func:`check_event`)."""
        check_event(event)
        acquisition.acquire(event)

    def finish(self, acquisition: Any, timeout_s: float | None = None) -> None:
        """Let queued events run, then close the acquisition (re-raises a hook's error).

        Raises
        ------
        AcquisitionError
            It did not finish within the timeout (it is then aborted).
        """
        acquisition.mark_finished()
        self._await(acquisition, timeout_s, abort_on_timeout=True)

    def abort(self, acquisition: Any, timeout_s: float | None = None) -> None:
        """Stop now: drop pending events and close (abort alone would hang the wait)."""
        acquisition.abort()
        acquisition.mark_finished()
        self._await(acquisition, timeout_s, abort_on_timeout=False)

    def _await(self, acquisition: Any, timeout_s: float | None, *, abort_on_timeout: bool) -> None:
        if getattr(acquisition, "_finished", False):
            self._forget(acquisition)
            return
        timeout = self.timeout_s if timeout_s is None else timeout_s
        errors: list[BaseException] = []

        def wait() -> None:
            try:
                acquisition.await_completion()
            except BaseException as exc:
                errors.append(exc)

        waiter = threading.Thread(target=wait, name="patchpilot-acq-wait", daemon=True)
        waiter.start()
        waiter.join(timeout)
        if waiter.is_alive():
            if abort_on_timeout:
                acquisition.abort()
                acquisition.mark_finished()
                waiter.join(timeout)
            raise AcquisitionError(f"acquisition did not finish within {timeout:g} s")
        self._forget(acquisition)
        # await_completion only re-raises a processor's error if it polls before the
        # events finish; look at the stored one too so it is never lost.
        stored = getattr(acquisition, "_exception", None)
        if not errors and isinstance(stored, BaseException):
            errors.append(stored)
        if errors:
            raise AcquisitionError(f"acquisition ended with an error: {errors[0]}") from errors[0]

    def _forget(self, acquisition: Any) -> None:
        if acquisition in self._acquisitions:
            self._acquisitions.remove(acquisition)

    def close(self) -> None:
        """Abort what still runs, shut the engine down, release the core (idempotent)."""
        from mmpycorex import launcher
        from pycromanager.acquisition.acq_eng_py.internal.engine import Engine

        if not self._open:
            return
        problems: list[str] = []
        for acquisition in list(self._acquisitions):
            try:
                self.abort(acquisition)
            except AcquisitionError as exc:
                problems.append(str(exc))
        with PycroManagerSession._lock:
            engine = getattr(Engine, "singleton", None)
            if engine is not None:
                engine.shutdown()
                del Engine.singleton
            if self.facade in launcher._PYMMCORES:
                launcher._PYMMCORES.remove(self.facade)
            PycroManagerSession._active = None
            self._open = False
        release_core_callbacks(self.core)
        if problems:
            raise AcquisitionError("; ".join(problems))
