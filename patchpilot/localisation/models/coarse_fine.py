"""The paper's coarse-to-fine network: ViT heatmap (coarse) then ResNet18 on it (fine).

Coarse learner: a timm Vision Transformer (patch 16, no classification head); its patch
tokens, reshaped to a (D, S/16, S/16) map, go through the heatmap head (3x3 conv to 256,
ReLU, x16 bilinear upsampling, 1x1 conv to one channel). Fine learner: a timm ResNet18 whose
first convolution takes the one-channel heatmap and whose head regresses K slots as
``sigmoid * S`` plus a presence logit per slot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import timm
import torch
import torch.nn.functional as F
from torch import nn

from patchpilot.localisation.output import LocaliserModel, LocaliserOutput

if TYPE_CHECKING:
    from patchpilot.localisation.presets import LocaliserPreset


def _any(module: nn.Module) -> Any:
    """timm models are used through dynamic attributes (patch_embed, feature_info...)."""
    return module


__all__ = ["CoarseToFine", "HeatmapHead", "SlotRegressor", "ViTEncoder"]


class HeatmapHead(nn.Module):
    """The paper's heatmap head.

    ``conv1x1_first=True`` applies the 1x1 convolution before the upsampling. Both operations
    are linear and act on different axes (channels vs space) and bilinear weights sum to one,
    so the result equals the paper's order while upsampling 1 channel instead of 256.
    """

    def __init__(
        self, in_channels: int, hidden: int = 256, upsample: int = 16, conv1x1_first: bool = True
    ) -> None:
        super().__init__()
        self.conv3x3 = nn.Conv2d(in_channels, hidden, kernel_size=3, padding=1)
        self.conv1x1 = nn.Conv2d(hidden, 1, kernel_size=1)
        self.upsample = upsample
        self.conv1x1_first = conv1x1_first

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = F.interpolate(
            x, scale_factor=self.upsample, mode="bilinear", align_corners=False
        )
        return out

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = F.relu(self.conv3x3(features))
        if self.conv1x1_first:
            return self._up(self.conv1x1(hidden))
        out: torch.Tensor = self.conv1x1(self._up(hidden))
        return out


class ViTEncoder(nn.Module):
    """A timm ViT without head whose patch tokens become a (B, D, S/p, S/p) feature map."""

    def __init__(self, name: str, input_size_px: int, **kwargs: Any) -> None:
        super().__init__()
        self.vit: Any = _any(
            timm.create_model(
                name, pretrained=False, num_classes=0, in_chans=1, img_size=input_size_px, **kwargs
            )
        )
        self.grid = tuple(self.vit.patch_embed.grid_size)
        self.out_channels = int(self.vit.embed_dim)
        self.patch_px = int(self.vit.patch_embed.patch_size[0])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens: torch.Tensor = self.vit.forward_features(images)[:, self.vit.num_prefix_tokens :]
        batch = tokens.shape[0]
        return tokens.transpose(1, 2).reshape(batch, self.out_channels, *self.grid)


class SlotRegressor(nn.Module):
    """A timm CNN regressing K slots (``sigmoid * S - 0.5`` px) and K presence logits."""

    def __init__(self, name: str, input_size_px: int, max_tips: int, in_chans: int = 1) -> None:
        super().__init__()
        self.net: Any = _any(
            timm.create_model(name, pretrained=False, in_chans=in_chans, num_classes=max_tips * 3)
        )
        self.size = float(input_size_px)
        self.max_tips = max_tips

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw: torch.Tensor = self.net(x)
        raw = raw.view(x.shape[0], self.max_tips, 3)
        # -0.5 so the range covers the image's extent around the pixel centres [0, S-1].
        tips = torch.sigmoid(raw[..., :2]) * self.size - 0.5
        return tips, raw[..., 2]


class CoarseToFine(LocaliserModel):
    """ViT heatmap learner followed by a ResNet slot regressor reading that heatmap."""

    def __init__(self, preset: LocaliserPreset) -> None:
        super().__init__()
        self.preset = preset
        encoder = ViTEncoder(preset.backbone, preset.input_size_px, **dict(preset.backbone_kwargs))
        self.encoder = encoder
        self.head = HeatmapHead(encoder.out_channels, upsample=encoder.patch_px)
        self.fine = SlotRegressor(preset.decoder, preset.input_size_px, preset.max_tips)

    def parts(self) -> dict[str, nn.Module]:
        return {"coarse": nn.ModuleList([self.encoder, self.head]), "fine": self.fine}

    def forward(self, images: torch.Tensor) -> LocaliserOutput:
        heatmap_logit = self.head(self.encoder(images))
        tips, presence = self.fine(torch.sigmoid(heatmap_logit))
        return LocaliserOutput(tips, presence, heatmap_logit=heatmap_logit, heatmap_stride=1)
