"""What every localiser network returns, and the base class that all of them share.

A network maps a batch of normalised 1-channel images ``(B, 1, S, S)`` to K tip slots
(coordinates in input pixels plus a presence logit each) and, when it has one, a heatmap.
Training, evaluation, export and inference only rely on this surface, so any architecture
(coarse-to-fine, direct regression, CNN heatmap) plugs into the same loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from patchpilot.localisation.presets import LocaliserPreset

__all__ = ["LocaliserModel", "LocaliserOutput"]


@dataclass(frozen=True)
class LocaliserOutput:
    """One forward pass.

    Attributes
    ----------
    tips_px
        (B, K, 2) tip slots, (x_px, y_px) in input pixels, origin at the top-left pixel centre.
    presence_logit
        (B, K) logit that each slot holds a real tip.
    heatmap_logit
        (B, 1, S / stride, S / stride) heatmap logits, or None for models without a heatmap.
    heatmap_stride
        Input pixels per heatmap cell (1 = full resolution).
    offset
        (B, 2, h, w) per-cell sub-cell offsets (x, y) in cells, or None.
    """

    tips_px: torch.Tensor
    presence_logit: torch.Tensor
    heatmap_logit: torch.Tensor | None = None
    heatmap_stride: int = 1
    offset: torch.Tensor | None = None


class LocaliserModel(nn.Module):
    """Base of every localiser network.

    Subclasses set ``self.preset`` and implement :meth:`forward` and :meth:`parts` (the named
    sub-modules that training stages freeze or train, e.g. ``coarse`` and ``fine``).
    """

    preset: LocaliserPreset

    def forward(self, images: torch.Tensor) -> LocaliserOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, images: torch.Tensor) -> LocaliserOutput:
        out: LocaliserOutput = super().__call__(images)
        return out

    def parts(self) -> dict[str, nn.Module]:
        """Named trainable parts (``all``, the whole network, always exists besides these)."""
        return {"all": self}
