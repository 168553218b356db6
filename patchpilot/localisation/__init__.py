"""The pipette-tip localiser: presets, networks, training, evaluation and inference.

``from patchpilot.localisation import Localiser`` for inference;
``create_localiser(name)`` / ``list_localisers()`` for networks.
"""

from patchpilot.localisation import (
    _builtin,  # noqa: F401  (registers the built-in presets)
    baselines,  # noqa: F401  (baseline and comparison presets)
)
from patchpilot.localisation._errors import LocaliserError
from patchpilot.localisation.classical import register as _register_classical
from patchpilot.localisation.inference import Localiser
from patchpilot.localisation.output import LocaliserModel, LocaliserOutput
from patchpilot.localisation.presets import (
    LocaliserPreset,
    StageSpec,
    create_localiser,
    get_preset,
    list_localisers,
    register_architecture,
    register_localiser,
)

_register_classical()

__all__ = [
    "Localiser",
    "LocaliserError",
    "LocaliserModel",
    "LocaliserOutput",
    "LocaliserPreset",
    "StageSpec",
    "create_localiser",
    "get_preset",
    "list_localisers",
    "register_architecture",
    "register_localiser",
]
