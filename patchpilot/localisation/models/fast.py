"""The real-time default: a light CNN heatmap at stride 4 (coarse) + local refinement (fine).

Coarse: a timm backbone (``features_only``) and a small top-down feature pyramid give one
heatmap logit per 4 x 4 pixel cell. Fine: at each of the K strongest local maxima the tip is
refined to sub-pixel precision, either by a regressed offset (``refine="offset"``, two extra
channels trained in the 3 x 3 cells around each tip) or by a soft-argmax over the 3 x 3
heatmap window (``refine="softargmax"``). The peak's logit is the slot's presence logit.
Fully convolutional: any input whose sides are multiples of 32 works.
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


__all__ = ["FastHeatmapNet", "decode_peaks"]

STRIDE = 4


class FastHeatmapNet(LocaliserModel):
    """CNN backbone + top-down pyramid to stride 4 + heatmap/offset head + peak decoding."""

    def __init__(self, preset: LocaliserPreset) -> None:
        super().__init__()
        self.preset = preset
        kwargs: dict[str, Any] = dict(preset.backbone_kwargs)
        extra = dict(preset.extra)
        width = int(extra.get("pyramid_channels", 48))
        self.refine = str(extra.get("refine", "offset"))
        if self.refine not in ("offset", "softargmax"):
            raise ValueError(f"refine must be 'offset' or 'softargmax', got {self.refine!r}")
        probe: Any = _any(
            timm.create_model(
                preset.backbone, pretrained=False, features_only=True, in_chans=1, **kwargs
            )
        )
        reductions = probe.feature_info.reduction()
        indices = [i for i, r in enumerate(reductions) if r >= STRIDE]
        if not indices or reductions[indices[0]] != STRIDE:
            raise ValueError(f"backbone {preset.backbone} has no stride-{STRIDE} feature map")
        self.backbone: Any = _any(
            timm.create_model(
                preset.backbone,
                pretrained=False,
                features_only=True,
                in_chans=1,
                out_indices=tuple(indices),
                **kwargs,
            )
        )
        channels = self.backbone.feature_info.channels()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, kernel_size=1) for c in channels)
        self.head = nn.Sequential(
            nn.Conv2d(width, width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 3 if self.refine == "offset" else 1, kernel_size=1),
        )
        # Start with a low prior for "tip here" (CenterNet's trick) so focal loss is stable.
        final = self.head[-1]
        assert isinstance(final, nn.Conv2d) and final.bias is not None
        with torch.no_grad():
            final.bias.zero_()
            final.bias[0] = -4.0

    def parts(self) -> dict[str, nn.Module]:
        return {"coarse": nn.ModuleList([self.backbone, self.lateral]), "fine": self.head}

    def forward(self, images: torch.Tensor) -> LocaliserOutput:
        features: list[torch.Tensor] = self.backbone(images)
        pyramid = self.lateral[-1](features[-1])
        for level in range(len(features) - 2, -1, -1):
            lateral = self.lateral[level](features[level])
            pyramid = lateral + F.interpolate(
                pyramid, size=lateral.shape[-2:], mode="bilinear", align_corners=False
            )
        maps = self.head(pyramid)
        heatmap_logit = maps[:, :1]
        offset = maps[:, 1:3] if self.refine == "offset" else None
        tips, presence = decode_peaks(heatmap_logit, offset, self.preset.max_tips, STRIDE)
        return LocaliserOutput(
            tips, presence, heatmap_logit=heatmap_logit, heatmap_stride=STRIDE, offset=offset
        )


def decode_peaks(
    heatmap_logit: torch.Tensor, offset: torch.Tensor | None, k: int, stride: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The K strongest 3 x 3 local maxima, refined to sub-cell precision.

    Parameters
    ----------
    heatmap_logit
        (B, 1, h, w) logits.
    offset
        (B, 2, h, w) offsets in cells, or None to refine by soft-argmax over the 3 x 3 window.
    k
        Number of slots returned (fewer cells than k: k is clipped to h * w).
    stride
        Input pixels per cell.

    Returns
    -------
    tuple of torch.Tensor
        (B, K, 2) coordinates in input pixels and (B, K) peak logits (presence).
    """
    batch, _, rows, cols = heatmap_logit.shape
    k = min(k, rows * cols)
    pooled = F.max_pool2d(heatmap_logit, kernel_size=3, stride=1, padding=1)
    is_peak = heatmap_logit >= pooled
    masked = torch.where(is_peak, heatmap_logit, heatmap_logit - 1e4)
    score, index = masked.view(batch, -1).topk(k, dim=1)
    u = (index % cols).to(heatmap_logit.dtype)
    v = torch.div(index, cols, rounding_mode="floor").to(heatmap_logit.dtype)
    if offset is not None:
        flat = offset.reshape(batch, 2, -1)
        du = flat[:, 0].gather(1, index)
        dv = flat[:, 1].gather(1, index)
    else:
        prob = torch.sigmoid(heatmap_logit)
        windows = F.unfold(prob, kernel_size=3, padding=1)  # (B, 9, h*w), zeros outside
        local = windows.gather(2, index.unsqueeze(1).expand(-1, 9, -1))  # (B, 9, K)
        weight = local / local.sum(1, keepdim=True).clamp(min=1e-6)
        grid = torch.tensor([-1.0, 0.0, 1.0], dtype=prob.dtype, device=prob.device)
        du = (weight * grid.repeat(3).view(1, 9, 1)).sum(1)
        dv = (weight * grid.repeat_interleave(3).view(1, 9, 1)).sum(1)
    centre = (stride - 1) / 2.0
    x = (u + du) * stride + centre
    y = (v + dv) * stride + centre
    # Non-peak cells carry -1e4, so they never read as present.
    return torch.stack([x, y], dim=-1), score
