"""Applying the trained generator: crops around (candidate) tips, G, paste back.

:class:`CropEnhancer` turns the in vivo look into the clean look in fixed-size crops of a
normalised model-resolution image and pastes them back (pixels outside every crop stay as
they were). :class:`EnhancedLocaliser` is a :class:`Localiser` whose frames are enhanced
before its network sees them: a first pass (another localiser, or its own network on the
raw frame) proposes candidate tips, the crops around them are enhanced, and the network runs
on the result. Training data for such a network come from :func:`enhance_sample_set`, which
crops around the labelled tips as the paper does, jittered so that crop borders do not
betray the tip position, plus one crop at a random place per frame (as wrong candidates
would be at inference).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from patchpilot.localisation._errors import LocaliserError
from patchpilot.localisation.cyclegan.crops import (
    crop_windows,
    from_unit_range,
    paste_back,
    to_unit_range,
)
from patchpilot.localisation.cyclegan.training import load_cyclegan
from patchpilot.localisation.inference import Localiser, PreparedFrame
from patchpilot.localisation.output import LocaliserModel
from patchpilot.localisation.preprocess import (
    check_frame,
    check_pixel_size,
    normalise,
    rescale_to_model,
    to_scaled_px,
)
from patchpilot.localisation.samples import SampleSet
from patchpilot.localisation.tiling import TileGrid

__all__ = ["CropEnhancer", "EnhancedLocaliser", "enhance_sample_set"]

F32 = NDArray[np.float32]


class CropEnhancer:
    """The in vivo -> clean generator applied to crops of a normalised image.

    Parameters
    ----------
    generator
        The trained G.
    crop_px
        Crop side (pixels at ``pixel_size_um``).
    pixel_size_um
        The pixel size the generator was trained at.
    batch_crops
        Crops per generator call.
    """

    def __init__(
        self,
        generator: nn.Module,
        crop_px: int,
        pixel_size_um: float,
        *,
        batch_crops: int = 32,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.generator = generator.eval()
        self.crop_px = int(crop_px)
        self.pixel_size_um = float(pixel_size_um)
        self.batch_crops = batch_crops
        self.info = dict(info or {})

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> CropEnhancer:
        """Load G from a CycleGAN checkpoint written by ``patchpilot gan train``.

        Raises
        ------
        LocaliserError
            As :func:`patchpilot.localisation.cyclegan.training.load_cyclegan`.
        """
        nets, data = load_cyclegan(path)
        network = data["network"]
        info = {
            "checkpoint": str(path),
            "steps": data.get("steps"),
            "images_seen": data.get("images_seen"),
            "elapsed_s": data.get("elapsed_s"),
        }
        return cls(nets["G"], int(network["crop_px"]), float(network["pixel_size_um"]), info=info)

    def enhance(self, image: NDArray[np.floating], centres_px: NDArray[np.floating]) -> F32:
        """``image`` with the crops around ``centres_px`` (n, 2) replaced by G's output.

        Raises
        ------
        ValueError
            As :func:`patchpilot.localisation.cyclegan.crops.crop_windows`.
        """
        centres = np.asarray(centres_px, np.float64).reshape(-1, 2)
        batch = crop_windows(np.asarray(image, np.float32), centres, self.crop_px)
        if len(centres) == 0:
            return np.array(image, dtype=np.float32, copy=True)
        scaled, mean, std = to_unit_range(batch.crops)
        outputs = []
        with torch.inference_mode():
            for first in range(0, len(scaled), self.batch_crops):
                chunk = torch.from_numpy(scaled[first : first + self.batch_crops, None])
                outputs.append(self.generator(chunk)[:, 0].float().numpy())
        enhanced = from_unit_range(np.concatenate(outputs), mean, std)
        return paste_back(image, batch, enhanced)


class EnhancedLocaliser(Localiser):
    """A localiser whose network sees frames enhanced by the CycleGAN around candidate tips.

    Parameters
    ----------
    model
        The network (trained on enhanced frames, see :func:`enhance_sample_set`).
    enhancer
        The generator; its pixel size must be the model's.
    candidates
        The first coarse pass proposing where to crop (None: this network on the raw frame).
    **kwargs
        As :class:`Localiser`.

    Raises
    ------
    LocaliserError
        Pixel sizes of the generator and the network differ.
    """

    def __init__(
        self,
        model: LocaliserModel,
        enhancer: CropEnhancer,
        candidates: Localiser | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        if abs(enhancer.pixel_size_um - self.pixel_size_um) > 1e-9:
            raise LocaliserError(
                f"CycleGAN works at {enhancer.pixel_size_um} µm/px but the localiser at "
                f"{self.pixel_size_um} µm/px"
            )
        self.enhancer = enhancer
        self.candidates = candidates
        self.info = {**self.info, "gan": enhancer.info, "candidates": _describe(candidates)}

    def candidate_tips_px(self, frame: Any, pixel_size_um: float) -> NDArray[np.float64]:
        """(n, 2) candidate tips in frame pixels from the first pass."""
        if self.candidates is not None:
            found = self.candidates.localise(frame, pixel_size_um)
        else:
            found = self.infer([super().prepare(frame, pixel_size_um)]).detections[0]
        return np.array([(d.x_px, d.y_px) for d in found], np.float64).reshape(-1, 2)

    def prepare(self, frame: Any, pixel_size_um: float, name: str = "frame") -> PreparedFrame:
        """Check and resample the frame, enhance the crops around the candidate tips,
        normalise and tile (the crops are taken in the first-normalised image, and the
        result normalised again, exactly as :func:`enhance_sample_set` and the training
        loader do)."""
        image = check_frame(frame, name)
        size_um = check_pixel_size(pixel_size_um)
        scaled, scale = rescale_to_model(image, size_um, self.pixel_size_um)
        scaled = normalise(scaled, self.preset.normalisation)
        centres = to_scaled_px(self.candidate_tips_px(image, size_um), scale)
        scaled = normalise(self.enhancer.enhance(scaled, centres), self.preset.normalisation)
        side = self.preset.tile_px or self.preset.input_size_px
        multiple = 32 if self.preset.fully_convolutional else None
        rows, cols = scaled.shape
        grid = TileGrid.for_shape(rows, cols, side, self.min_overlap_px, multiple)
        return PreparedFrame(grid.cut(scaled), grid, scale, size_um)


def _describe(localiser: Localiser | None) -> dict[str, Any] | str:
    if localiser is None:
        return "self (raw frame)"
    return {
        "preset": localiser.preset.name,
        "checkpoint": localiser.info.get("checkpoint"),
        "confidence_threshold": localiser.confidence_threshold,
    }


def enhance_sample_set(
    samples: SampleSet,
    enhancer: CropEnhancer,
    *,
    jitter_px: float | None = None,
    random_crops: int = 1,
    seed: int = 0,
) -> SampleSet:
    """Training frames for a GAN-enhanced localiser: each frame resampled to the
    generator's pixel size, normalised, enhanced around its labelled tips (jittered by up to
    ``jitter_px``, default a quarter crop) and at ``random_crops`` random places, stored as
    float16 at that pixel size (tips mapped accordingly).
    """
    rng = np.random.default_rng(seed)
    jitter = enhancer.crop_px / 4 if jitter_px is None else float(jitter_px)
    px = enhancer.pixel_size_um
    images: list[NDArray[Any]] = []
    tips: list[NDArray[np.float64]] = []
    ends: list[NDArray[np.float64]] = []
    has_ends = hasattr(samples, "tips_end_px")
    for index, (raw, size) in enumerate(zip(samples.images, samples.pixel_size_um, strict=True)):
        scaled, scale = rescale_to_model(raw.astype(np.float32), float(size), px)
        scaled = normalise(scaled)
        xy = to_scaled_px(np.asarray(samples.tips_px[index]).reshape(-1, 2), scale)
        if has_ends:  # the pipette's visible end moves with the resampling too
            ends.append(to_scaled_px(samples.tips_end_px[index], scale))
        rows, cols = scaled.shape
        centres: Sequence[NDArray[np.float64]] = [
            xy + rng.uniform(-jitter, jitter, xy.shape),
            rng.uniform([0.0, 0.0], [cols - 1.0, rows - 1.0], (random_crops, 2)),
        ]
        images.append(enhancer.enhance(scaled, np.concatenate(centres)).astype(np.float16))
        tips.append(xy)
    provenance = {
        **samples.provenance,
        "enhanced_by": enhancer.info,
        "enhancement": {"jitter_px": jitter, "random_crops": random_crops, "seed": seed},
    }
    # Every other per-tip column (height, required...) is copied unchanged.
    changes: dict[str, Any] = {"tips_end_px": ends} if has_ends else {}
    return dataclasses.replace(
        samples,
        images=images,
        pixel_size_um=np.full(len(images), px),
        tips_px=tips,
        provenance=provenance,
        **changes,
    )
