"""The Pycro-Manager hook, the simulated microscope, recording and replay.

- :class:`FrameHook`: the ``image_process_fn`` (and pymmcore-plus ``frameReady`` slot) that
  hands frames to a localiser worker without blocking the acquisition.
- :class:`PycroManagerSession`: a REAL pycromanager acquisition (Python backend) on an
  in-process core, with every known trap handled; :class:`LiveAcquisition` runs it closed
  loop; :class:`MDALiveAcquisition` is the pymmcore-plus equivalent.
- :class:`SimulatedMicroscope` / :class:`SceneImageSource`: pure-Python devices whose camera
  renders the scene with the simulated pipettes where they really are.
- :class:`Imaging`: focus snaps for calibration (``control.Imaging`` protocol).
- :func:`open_recording` / :func:`replay_recording`: examine a run afterwards.

Heavy modules (the scene renderer, pymmcore-plus, pycromanager) load when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from patchpilot.acquisition._metadata import CorePositionReader, PositionReader
from patchpilot.acquisition.hook import FrameHook, FrameSubscriber, HookStats, TipLocaliser

if TYPE_CHECKING:
    from patchpilot.acquisition.devices import ImageSource, NoiseImageSource, RenderRequest
    from patchpilot.acquisition.imaging import Imaging
    from patchpilot.acquisition.live import LiveAcquisition
    from patchpilot.acquisition.mda import MDALiveAcquisition, connect_mda
    from patchpilot.acquisition.pycromanager_session import AcquisitionError, PycroManagerSession
    from patchpilot.acquisition.recording import Recording, RecordingError, open_recording
    from patchpilot.acquisition.replay import ReplayReport, replay_recording
    from patchpilot.acquisition.scene_source import PipetteGeometry, SceneImageSource
    from patchpilot.acquisition.simulated_acquisition import SimulatedAcquisition
    from patchpilot.acquisition.simulated_microscope import SimulatedMicroscope

_LAZY = {
    "ImageSource": "devices",
    "NoiseImageSource": "devices",
    "RenderRequest": "devices",
    "Imaging": "imaging",
    "LiveAcquisition": "live",
    "MDALiveAcquisition": "mda",
    "connect_mda": "mda",
    "AcquisitionError": "pycromanager_session",
    "PycroManagerSession": "pycromanager_session",
    "Recording": "recording",
    "RecordingError": "recording",
    "open_recording": "recording",
    "ReplayReport": "replay",
    "replay_recording": "replay",
    "PipetteGeometry": "scene_source",
    "SceneImageSource": "scene_source",
    "SimulatedAcquisition": "simulated_acquisition",
    "SimulatedMicroscope": "simulated_microscope",
}

__all__ = [
    "AcquisitionError",
    "CorePositionReader",
    "FrameHook",
    "FrameSubscriber",
    "HookStats",
    "ImageSource",
    "Imaging",
    "LiveAcquisition",
    "MDALiveAcquisition",
    "NoiseImageSource",
    "PipetteGeometry",
    "PositionReader",
    "PycroManagerSession",
    "Recording",
    "RecordingError",
    "RenderRequest",
    "ReplayReport",
    "SceneImageSource",
    "SimulatedAcquisition",
    "SimulatedMicroscope",
    "TipLocaliser",
    "connect_mda",
    "open_recording",
    "replay_recording",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'patchpilot.acquisition' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"patchpilot.acquisition.{module}"), name)
