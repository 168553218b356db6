"""The built-in presets: the paper's network, smaller ViTs, a test-sized one, and ``fast``."""

from __future__ import annotations

import dataclasses

from patchpilot.localisation.losses import LossSpec
from patchpilot.localisation.models.coarse_fine import CoarseToFine
from patchpilot.localisation.models.fast import FastHeatmapNet
from patchpilot.localisation.presets import (
    ALL_TERMS,
    LocaliserPreset,
    StageSpec,
    register_architecture,
    register_localiser,
)

__all__ = ["FAST", "PAPER", "TINY"]

register_architecture("coarse_fine", CoarseToFine)
register_architecture("fast_heatmap", FastHeatmapNet)

# The paper: encoder alone 50 epochs at 1e-4, decoder alone 50 at 1e-3, jointly 100 at 1e-4,
# halving the rate after 20 epochs without improvement. Stage 1 trains the heatmap (its
# decoder is frozen and random, so only the Dice term is informative); stage 2 the slots.
PAPER_STAGES = (
    StageSpec("encoder", ("coarse",), 1e-4, 0.25, frozenset({"heatmap"})),
    StageSpec("decoder", ("fine",), 1e-3, 0.25, frozenset({"distance", "presence"})),
    StageSpec("joint", ("coarse", "fine"), 1e-4, 0.5, ALL_TERMS),
)

PAPER = register_localiser(
    LocaliserPreset(
        name="paper",
        architecture="coarse_fine",
        backbone="vit_base_patch16_224",
        decoder="resnet18",
        input_size_px=256,
        pixel_size_um=1.0,
        max_tips=4,
        sigma_px=10.0,
        loss=LossSpec(heatmap="dice", distance_weight=0.15, presence_weight=1.0),
        stages=PAPER_STAGES,
        batch_size=32,
        epochs=200,
        plateau_patience=20,
        description="The paper's ViT-B/16 heatmap + ResNet18 regressor at 256 px (~550 ms/frame).",
    )
)
register_localiser(
    dataclasses.replace(
        PAPER,
        name="vit_s",
        backbone="vit_small_patch16_224",
        description="Coarse-to-fine with ViT-S/16.",
    )
)
register_localiser(
    dataclasses.replace(
        PAPER,
        name="vit_ti",
        backbone="vit_tiny_patch16_224",
        description="Coarse-to-fine with ViT-Ti/16.",
    )
)
TINY = register_localiser(
    dataclasses.replace(
        PAPER,
        name="tiny",
        backbone="vit_tiny_patch16_224",
        backbone_kwargs=(("embed_dim", 32), ("depth", 1), ("num_heads", 2)),
        decoder="resnet10t",
        input_size_px=64,
        pixel_size_um=2.0,
        sigma_px=4.0,
        batch_size=8,
        epochs=3,
        train_frames=64,
        val_frames=16,
        plateau_patience=1,
        stages=tuple(dataclasses.replace(s, lr=s.lr * 10) for s in PAPER_STAGES),
        description="A seconds-to-train coarse-to-fine network for tests.",
    )
)

FAST = register_localiser(
    LocaliserPreset(
        name="fast",
        architecture="fast_heatmap",
        backbone="mobilenetv3_small_100",
        extra=(("pyramid_channels", 48), ("refine", "offset")),
        input_size_px=256,
        pixel_size_um=1.0,
        max_tips=8,
        sigma_px=4.0,
        loss=LossSpec(
            heatmap="focal",
            distance_weight=0.15,
            presence_weight=0.0,
            offset_weight=1.0,
            match_gate_px=8.0,
        ),
        stages=(StageSpec("joint", ("all",), 3e-3, 1.0, ALL_TERMS, schedule="cosine"),),
        train_crop_px=96,
        batch_size=32,
        epochs=30,
        train_frames=20000,
        val_frames=500,
        plateau_patience=3,
        weight_decay=1e-4,
        fully_convolutional=True,
        tile_px=1024,
        description="Real-time default: MobileNetV3-small heatmap at stride 4 + offset refinement.",
    )
)
