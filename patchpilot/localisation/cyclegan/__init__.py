"""The paper's CycleGAN step: unpaired in vivo <-> clean translation of crops around tips.

- :mod:`~patchpilot.localisation.cyclegan.networks`: ResNet generator, PatchGAN discriminator.
- :mod:`~patchpilot.localisation.cyclegan.crops`: fixed-size crops and pasting them back.
- :mod:`~patchpilot.localisation.cyclegan.data`: the two unpaired domains (simulated).
- :mod:`~patchpilot.localisation.cyclegan.training`: LSGAN + cycle + identity training,
  checkpoints (``patchpilot gan train``).
- :mod:`~patchpilot.localisation.cyclegan.enhance`: enhancing frames around candidate tips
  before a localiser sees them (``patchpilot gan train-localiser`` / ``gan evaluate``).
"""

from patchpilot.localisation.cyclegan.crops import CropBatch, crop_windows, paste_back
from patchpilot.localisation.cyclegan.data import DomainFrames, clean_set, render_clean_split
from patchpilot.localisation.cyclegan.enhance import (
    CropEnhancer,
    EnhancedLocaliser,
    enhance_sample_set,
)
from patchpilot.localisation.cyclegan.networks import PatchDiscriminator, ResnetGenerator
from patchpilot.localisation.cyclegan.training import (
    GanConfig,
    GanResult,
    cyclegan_losses,
    load_cyclegan,
    train_cyclegan,
)

__all__ = [
    "CropBatch",
    "CropEnhancer",
    "DomainFrames",
    "EnhancedLocaliser",
    "GanConfig",
    "GanResult",
    "PatchDiscriminator",
    "ResnetGenerator",
    "clean_set",
    "crop_windows",
    "cyclegan_losses",
    "enhance_sample_set",
    "load_cyclegan",
    "paste_back",
    "render_clean_split",
    "train_cyclegan",
]
