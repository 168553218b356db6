"""The paper's baselines: direct regression of K tip slots from the image, no heatmap.

A timm backbone (ResNet18, ResNet50, ViT, or a VGG16-style stack) reads the normalised
1-channel image and a linear head gives, per slot, ``sigmoid * S`` coordinates and a presence
logit, exactly the slot convention of the fine learner in
:mod:`patchpilot.localisation.models.coarse_fine`. Trained with the Hungarian distance loss
plus the presence loss (no heatmap term), through the same training loop as every preset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import timm
import torch
from timm.models.vgg import VGG
from torch import nn

from patchpilot.localisation.output import LocaliserModel, LocaliserOutput

if TYPE_CHECKING:
    from patchpilot.localisation.presets import LocaliserPreset

__all__ = ["VGG16_CONFIG", "DirectRegressor", "slots_from_raw", "vgg16_style"]

VGG16_CONFIG: tuple[int | str, ...] = (
    *(64, 64, "M", 128, 128, "M"),
    *(256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
)
"""VGG16's 13 convolutions in five blocks (widths before scaling, "M" = 2 x 2 max pool)."""


def slots_from_raw(
    raw: torch.Tensor, max_tips: int, size_px: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3K) head outputs -> (B, K, 2) tips in input pixels and (B, K) presence logits.

    ``sigmoid * S - 0.5`` spans the image's extent around the pixel centres ``[0, S - 1]``.
    """
    slots = raw.view(raw.shape[0], max_tips, 3)
    tips = torch.sigmoid(slots[..., :2]) * float(size_px) - 0.5
    return tips, slots[..., 2]


class _VGGStyle(nn.Module):
    """VGG16 topology at a width fraction, with VGG's two hidden fully connected layers.

    The convolutions come from timm's VGG builder (with batch norm); the head keeps VGG's
    flatten -> FC -> FC -> output shape, on a 4 x 4 pooled map (VGG pools to 7 x 7) and with
    ``hidden`` units instead of 4096, so it fits the CPU budget here.
    """

    def __init__(self, width: float, hidden: int, num_outputs: int, dropout: float) -> None:
        super().__init__()
        config = [v if v == "M" else max(8, round(int(v) * width)) for v in VGG16_CONFIG]
        stack = VGG(config, in_chans=1, num_classes=0, norm_layer=nn.BatchNorm2d)
        self.features = stack.features  # the 13 conv/BN/ReLU layers and 5 pools only
        channels = int(config[-2])
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(channels * 16, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.features(x))
        return out


def vgg16_style(
    num_outputs: int, width: float = 0.5, hidden: int = 512, dropout: float = 0.2
) -> nn.Module:
    """A VGG16-style regressor (13 convolutions, 5 pools, 3 fully connected layers)."""
    if not 0 < width <= 1:
        raise ValueError(f"VGG width fraction must be in (0, 1], got {width}")
    return _VGGStyle(width, hidden, num_outputs, dropout)


def _is_vit(name: str) -> bool:
    return name.startswith(("vit_", "deit_"))


class DirectRegressor(LocaliserModel):
    """Image -> K tip slots (coordinates and presence) with one backbone, no heatmap.

    ``preset.backbone`` is a timm model name, or ``"vgg16_style"`` (width and hidden size
    from ``preset.extra``: ``vgg_width``, ``vgg_hidden``). ViT backbones are built at the
    preset's input size. All are built with ``pretrained=False``.
    """

    def __init__(self, preset: LocaliserPreset) -> None:
        super().__init__()
        self.preset = preset
        outputs = preset.max_tips * 3
        extra = dict(preset.extra)
        kwargs: dict[str, Any] = dict(preset.backbone_kwargs)
        if preset.backbone == "vgg16_style":
            self.net = vgg16_style(
                outputs,
                width=float(extra.get("vgg_width", 0.5)),
                hidden=int(extra.get("vgg_hidden", 512)),
            )
        else:
            if _is_vit(preset.backbone):
                kwargs.setdefault("img_size", preset.input_size_px)
            self.net = timm.create_model(
                preset.backbone, pretrained=False, in_chans=1, num_classes=outputs, **kwargs
            )

    def forward(self, images: torch.Tensor) -> LocaliserOutput:
        raw: torch.Tensor = self.net(images)
        tips, presence = slots_from_raw(raw, self.preset.max_tips, self.preset.input_size_px)
        return LocaliserOutput(tips, presence)
