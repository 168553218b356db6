"""Presets of the baselines and of the coarse-to-fine networks trained for the comparison.

All work at 1 µm per pixel on 128 x 128 inputs (frames are resampled and tiled by the shared
``Localiser``), with up to four tips per input as in the paper. Direct regression presets
(``regress_*``) train one stage on the Hungarian distance and presence terms. The
coarse-to-fine presets (``c2f_vit_ti_128``, ``c2f_vit_s_128``) keep the paper's three
stages (encoder, decoder, joint) and heatmap sigma (10 px at 256, so 5 px at 128). Two
deviations suit budgets of minutes without ImageNet weights: encoder rates five times the
paper's, and a cosine schedule within each stage (warm-up, then decay over the stage's
share of the budget) instead of halving on a 20-epoch plateau that a short run never sees.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from patchpilot.localisation._builtin import PAPER
from patchpilot.localisation.losses import LossSpec
from patchpilot.localisation.presets import (
    ALL_TERMS,
    LocaliserPreset,
    StageSpec,
    register_localiser,
)

__all__ = ["COARSE_FINE_PRESETS", "INPUT_SIZE_PX", "PIXEL_SIZE_UM", "REGRESSION_PRESETS"]

INPUT_SIZE_PX = 128
PIXEL_SIZE_UM = 1.0
_COMMON: dict[str, Any] = {
    "input_size_px": INPUT_SIZE_PX,
    "pixel_size_um": PIXEL_SIZE_UM,
    "max_tips": 4,
    "sigma_px": 5.0,
    "batch_size": 32,
    "epochs": 30,
    "train_frames": 10000,
    "val_frames": 500,
    "plateau_patience": 3,
}
_SLOT_TERMS = frozenset({"distance", "presence"})


def _regression(
    name: str, backbone: str, lr: float, description: str, extra: tuple[tuple[str, Any], ...] = ()
) -> LocaliserPreset:
    return register_localiser(
        LocaliserPreset(
            name=name,
            architecture="direct_regression",
            backbone=backbone,
            loss=LossSpec(heatmap_weight=0.0, distance_weight=0.15, presence_weight=1.0),
            stages=(StageSpec("joint", ("all",), lr, 1.0, _SLOT_TERMS, schedule="cosine"),),
            weight_decay=1e-4,
            extra=extra,
            description=description,
            **_COMMON,
        )
    )


REGRESSION_PRESETS = (
    _regression(
        "regress_resnet18",
        "resnet18",
        1e-3,
        "Baseline: ResNet18 regressing 4 tip slots + presence from the image.",
    ),
    _regression(
        "regress_resnet50",
        "resnet50",
        1e-3,
        "Baseline: ResNet50 regressing 4 tip slots + presence from the image.",
    ),
    _regression(
        "regress_vgg16",
        "vgg16_style",
        1e-3,
        "Baseline: VGG16-style (13 convs with BN at half width, FC 512-512) regressor.",
        extra=(("vgg_width", 0.5), ("vgg_hidden", 512)),
    ),
    _regression(
        "regress_vit_ti",
        "vit_tiny_patch16_224",
        5e-4,
        "Baseline: ViT-Ti/16 (class token) regressing 4 tip slots + presence.",
    ),
)

C2F_STAGES = (
    StageSpec("encoder", ("coarse",), 5e-4, 0.25, frozenset({"heatmap"}), schedule="cosine"),
    StageSpec("decoder", ("fine",), 1e-3, 0.25, _SLOT_TERMS, schedule="cosine"),
    StageSpec("joint", ("coarse", "fine"), 5e-4, 0.5, ALL_TERMS, schedule="cosine"),
)

COARSE_FINE_PRESETS = tuple(
    register_localiser(
        dataclasses.replace(
            PAPER,
            name=name,
            backbone=backbone,
            stages=C2F_STAGES,
            description=description,
            **_COMMON,
        )
    )
    for name, backbone, description in (
        (
            "c2f_vit_ti_128",
            "vit_tiny_patch16_224",
            "Paper architecture with ViT-Ti/16 at 128 px (1 µm/px): heatmap + ResNet18 slots.",
        ),
        (
            "c2f_vit_s_128",
            "vit_small_patch16_224",
            "Paper architecture with ViT-S/16 at 128 px (1 µm/px): heatmap + ResNet18 slots.",
        ),
    )
)
