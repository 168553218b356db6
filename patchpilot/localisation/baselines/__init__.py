"""Baselines for the localiser comparison: the paper's direct regressors and ablations.

Importing this package registers the ``direct_regression`` and ``coarse_only``
architectures and the presets of :mod:`patchpilot.localisation.baselines.presets`
(``regress_resnet18``, ``regress_resnet50``, ``regress_vgg16``, ``regress_vit_ti``,
``c2f_vit_ti_128``, ``c2f_vit_s_128``), so they train and evaluate through the same
``patchpilot train`` / ``patchpilot evaluate`` as every other preset.
"""

from patchpilot.localisation.baselines.coarse_only import (
    CoarseOnly,
    coarse_only_from_checkpoint,
    heatmap_peaks,
)
from patchpilot.localisation.baselines.regression import DirectRegressor, vgg16_style
from patchpilot.localisation.presets import register_architecture

register_architecture("direct_regression", DirectRegressor)
register_architecture("coarse_only", CoarseOnly)

from patchpilot.localisation.baselines import presets  # noqa: E402  (needs the architectures)

__all__ = [
    "CoarseOnly",
    "DirectRegressor",
    "coarse_only_from_checkpoint",
    "heatmap_peaks",
    "presets",
    "vgg16_style",
]
