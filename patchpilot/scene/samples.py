"""The README's sample sheet: random scenes with 1 to 4 pipettes, noisy, noise-free, clean."""

from __future__ import annotations

import numpy as np
from PIL import Image

from patchpilot.scene.rendering import render, render_clean, render_mean
from patchpilot.scene.sampler import scene_for_seed
from patchpilot.scene.sheet import Tile, contact_sheet

__all__ = ["sample_sheet"]


def sample_sheet(seed: int = 0, size_px: int = 256, max_tries: int = 500) -> Image.Image:
    """Rows of 1, 2, 3 and 4 pipettes at 1 µm/pixel; columns: the noisy frame, its expected
    photons (no noise), and the same pipettes in the clean (ex vivo) domain.

    Each row is the first random scene from ``seed`` on whose tips all lie in the frame, at
    least half of them in focus; otherwise the training distribution unchanged.
    """
    tiles = []
    for count in (1, 2, 3, 4):
        family = seed
        for family in range(seed + 1000 * count, seed + 1000 * count + max_tries):
            scene, noise = scene_for_seed(
                family, n_pipettes=count, pixel_size_um=1.0, size_px=size_px
            )
            truth = render_mean(scene)[1]
            if all(t.in_frame for t in truth) and 2 * sum(t.in_focus for t in truth) >= count:
                break
        image, truth = render(scene, noise)
        mean, _ = render_mean(scene)
        clean, _ = render_clean(scene, noise)
        marks = [(t.x_px, t.y_px, t.in_focus) for t in truth if t.in_frame]
        snr = scene.acquisition.background_snr()
        tiles.append(Tile(image, marks, f"{count} pip. seed {family} SNR {snr:.1f}"))
        tiles.append(Tile(mean.astype(np.float32), [], "noise-free"))
        tiles.append(Tile(clean, [], "clean domain"))
    return contact_sheet(tiles, columns=3)
