"""A real rig's acquisition: Micro-Manager's Java GUI through pycromanager, or pymmcore-plus.

The same hook, localiser and ``Imaging`` as the dry-run; only the source of frames differs:

- ``microscope.kind == "pycromanager"``: Micro-Manager runs with its GUI and the pycromanager
  bridge on; a Java-backend ``Acquisition`` runs the closed loop (``LiveAcquisition``).
- ``microscope.kind == "pymmcore-plus"``: a ``CMMCorePlus`` loads ``microscope.mm_config_file``
  and runs a continuous MDA (``MDALiveAcquisition``); napari-micromanager rigs use this too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from patchpilot.acquisition._metadata import CorePositionReader
from patchpilot.acquisition.hook import FrameHook, FrameSubscriber, TipLocaliser
from patchpilot.acquisition.imaging import Imaging
from patchpilot.acquisition.live import LiveAcquisition
from patchpilot.acquisition.mda import MDALiveAcquisition
from patchpilot.acquisition.pycromanager_session import AcquisitionError, check_event
from patchpilot.acquisition.recording import DATASET_NAME
from patchpilot.config import RigConfig
from patchpilot.events import EventLog

__all__ = ["JavaBackendSession", "RigAcquisition"]


class JavaBackendSession:
    """The session interface ``LiveAcquisition`` needs, over a running Micro-Manager GUI.

    The Java backend needs none of the python backend's workarounds (engine singleton,
    callback release); hooks may take one or two arguments there.
    """

    def __init__(self, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s
        self._acquisitions: list[Any] = []

    def acquisition(
        self,
        image_process_fn: Callable[..., Any] | None,
        *,
        directory: str | Path | None = None,
        name: str = "patchpilot",
    ) -> Any:
        from pycromanager import Acquisition

        acquisition = Acquisition(
            directory=str(directory) if directory is not None else None,
            name=name,
            image_process_fn=image_process_fn,
            show_display=False,
        )
        self._acquisitions.append(acquisition)
        return acquisition

    def submit(self, acquisition: Any, event: dict[str, Any] | list[dict[str, Any]]) -> None:
        check_event(event)
        acquisition.acquire(event)

    def finish(self, acquisition: Any, timeout_s: float | None = None) -> None:
        acquisition.mark_finished()
        self._await(acquisition, timeout_s)

    def abort(self, acquisition: Any, timeout_s: float | None = None) -> None:
        acquisition.abort()
        acquisition.mark_finished()
        self._await(acquisition, timeout_s)

    def _await(self, acquisition: Any, timeout_s: float | None) -> None:
        import threading

        done = threading.Event()

        def wait() -> None:
            with contextlib.suppress(Exception):
                acquisition.await_completion()
            done.set()

        threading.Thread(target=wait, name="patchpilot-java-await", daemon=True).start()
        if not done.wait(timeout_s if timeout_s is not None else self.timeout_s):
            raise AcquisitionError("the Micro-Manager acquisition did not finish in time")
        if acquisition in self._acquisitions:
            self._acquisitions.remove(acquisition)

    def close(self) -> None:
        for acquisition in list(self._acquisitions):
            with contextlib.suppress(Exception):
                self.abort(acquisition)


def _connect_java_core(port: int) -> Any:
    try:
        from pycromanager import Core

        return Core(port=port)
    except Exception as exc:
        raise AcquisitionError(
            f"no Micro-Manager answered on the pycromanager bridge port {port} ({exc}); start "
            "Micro-Manager and enable Tools > Options > Run pycro-manager server on port "
            f"{port}"
        ) from None


def _load_mmcore(config_file: Path | None) -> Any:
    from pymmcore_plus import CMMCorePlus

    if config_file is None:
        raise AcquisitionError(
            "microscope.kind is pymmcore-plus but microscope.mm_config_file is not set"
        )
    if not config_file.is_file():
        raise AcquisitionError(f"microscope.mm_config_file {config_file} does not exist")
    core = CMMCorePlus()
    try:
        core.loadSystemConfiguration(str(config_file))
    except Exception as exc:
        raise AcquisitionError(f"Micro-Manager could not load {config_file}: {exc}") from None
    return core


class RigAcquisition:
    """Frames from a real microscope into the hook; ``imaging`` for calibration sweeps.

    Parameters
    ----------
    config
        The rig (its ``microscope`` section says which path).
    localiser
        Runs on the hook's worker thread.
    log
        The experiment's event log.
    record_dir
        Save frames through pycromanager's storage (Java backend) here.
    core
        An already-configured core (pymmcore-plus path); None loads ``mm_config_file``.

    Raises
    ------
    AcquisitionError
        The microscope kind is not a real one, Micro-Manager does not answer, or the
        configuration cannot be loaded.
    """

    def __init__(
        self,
        config: RigConfig,
        localiser: TipLocaliser,
        *,
        log: EventLog,
        record_dir: str | Path | None = None,
        core: Any = None,
    ) -> None:
        microscope = config.microscope
        self.log = log
        self._session: JavaBackendSession | None = None
        shape = (microscope.frame_height_px, microscope.frame_width_px)
        if microscope.kind == "pymmcore-plus":
            self.core = core if core is not None else _load_mmcore(microscope.mm_config_file)
            self.hook = FrameHook(
                localiser,
                positions=CorePositionReader(self.core),
                log=log,
                expected_shape_px=shape,
            )
            self.live: LiveAcquisition | MDALiveAcquisition = MDALiveAcquisition(
                self.core, self.hook
            )
        elif microscope.kind == "pycromanager":
            self.core = core if core is not None else _connect_java_core(microscope.bridge_port)
            self.hook = FrameHook(
                localiser,
                positions=CorePositionReader(self.core),
                log=log,
                expected_shape_px=shape,
            )
            self._session = JavaBackendSession()
            self.live = LiveAcquisition(
                self._session,  # type: ignore[arg-type]  # structurally a session
                self.hook,
                directory=record_dir,
                name=DATASET_NAME,
            )
        else:
            raise AcquisitionError(
                f"microscope.kind {microscope.kind!r} is not a real microscope; use the "
                "dry-run for simulated rigs"
            )
        self.imaging = Imaging(self.live, focus_limits_um=microscope.focus_limits_um)

    def subscribe(self, subscriber: FrameSubscriber) -> Callable[[], None]:
        return self.hook.subscribe(subscriber)

    def start(self) -> None:
        self.live.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        try:
            self.live.stop(timeout_s)
        finally:
            self.imaging.close()
            if self._session is not None:
                self._session.close()
