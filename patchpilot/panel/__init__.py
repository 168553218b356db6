"""The web control panel: watch what the automation sees, take over a pipette, stop everything.

``serve_panel(ControllerBackend.from_experiment(experiment))`` serves it from the process that
runs the experiment (uvicorn on a thread; 127.0.0.1 unless told otherwise). The page is plain
HTML/CSS/JS in ``static/``; the panel reads and commands the experiment only through
:class:`PanelBackend`.
"""

from patchpilot.panel._protocol import (
    JOG_AXES,
    BackendStats,
    ClearanceWarning,
    JogAxis,
    LiveFrame,
    PanelBackend,
    PipetteOverlay,
)
from patchpilot.panel.app import create_app
from patchpilot.panel.backend import ControllerBackend, Unsupported
from patchpilot.panel.server import PanelServer, serve_panel

__all__ = [
    "JOG_AXES",
    "BackendStats",
    "ClearanceWarning",
    "ControllerBackend",
    "JogAxis",
    "LiveFrame",
    "PanelBackend",
    "PanelServer",
    "PipetteOverlay",
    "Unsupported",
    "create_app",
    "serve_panel",
]
