"""A torch Dataset that renders synthetic frames on the fly from a seed range (no disk).

Item ``i`` is scene family ``seed_range[0] + i`` (see :mod:`patchpilot.scene.sampler`), so an
item is the same every time it is asked for, in any worker, and splits stay disjoint.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import Dataset

from patchpilot.scene.model import SceneError
from patchpilot.scene.rendering import render, render_clean
from patchpilot.scene.sampler import PIXEL_SIZE_RANGE_UM, SceneSampler

__all__ = ["SyntheticTipDataset", "normalise_image"]


def normalise_image(image: NDArray[Any]) -> NDArray[np.float32]:
    """Per-frame z-score: ``(image - mean) / std`` as float32 (std floored at 1e-6).

    The same rule as ``patchpilot.localisation.preprocess.normalise("zscore")``, so a model
    sees gain, offset and bit depth removed the same way in training and on a rig.
    """
    data = np.asarray(image, dtype=np.float32)
    mean = float(data.mean(dtype=np.float64))
    std = float(data.std(dtype=np.float64))
    out = data - np.float32(mean)
    if std > 1e-6:
        out /= np.float32(std)
    return out


class SyntheticTipDataset(Dataset[dict[str, torch.Tensor]]):
    """Rendered frames with their tips, for training the localiser.

    Each item is a dict:

    - ``image``: float32 (1, H, W), normalised by :func:`normalise_image` (per-frame z-score);
    - ``tips_px``: float32 (max_tips, 2) tip (x, y) in pixels, in-frame tips first, padded
      with NaN;
    - ``valid``: bool (max_tips,) True for the tips that are in the frame;
    - ``in_focus``: bool (max_tips,) those tips within the depth of field;
    - ``z_offset_um``: float32 (max_tips,) tip z minus focus (NaN padding);
    - ``count``: int64 () number of in-frame tips;
    - ``pixel_size_um``: float32 ();
    - ``seed``: int64 () the scene family.

    Parameters
    ----------
    split
        A split name (``"train"``, ``"val"``, ``"test"``) or a (low, high) seed range.
    length
        Number of items (at most the range's size); None = the whole range.
    max_tips
        Padding size (8 = the most pipettes the sampler draws).
    clean_domain
        Render the ex vivo domain (for the CycleGAN's target side).
    scene_kwargs
        Passed to :func:`patchpilot.scene.random_scene` (``n_pipettes``, ``pixel_size_um``,
        ``size_px``...).

    Raises
    ------
    SceneError
        Unknown split, ``length`` beyond the range, ``max_tips`` < 1.
    """

    def __init__(
        self,
        split: str | tuple[int, int] = "train",
        length: int | None = None,
        *,
        size_px: int | tuple[int, int] = 256,
        pixel_size_um: float | tuple[float, float] = PIXEL_SIZE_RANGE_UM,
        n_pipettes: int | tuple[int, int] = (1, 4),
        max_tips: int = 8,
        clean_domain: bool = False,
        **scene_kwargs: Any,
    ) -> None:
        kwargs = dict(
            scene_kwargs, size_px=size_px, pixel_size_um=pixel_size_um, n_pipettes=n_pipettes
        )
        self.sampler = SceneSampler(split, tuple(sorted(kwargs.items())))
        available = len(self.sampler)
        self.length = available if length is None else int(length)
        if not 0 < self.length <= available:
            raise SceneError(f"SyntheticTipDataset length must be 1..{available}, got {length!r}")
        if max_tips < 1:
            raise SceneError(f"SyntheticTipDataset max_tips must be >= 1, got {max_tips!r}")
        self.max_tips = int(max_tips)
        self.clean_domain = bool(clean_domain)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} outside a dataset of {self.length}")
        index %= self.length
        scene, noise = self.sampler.scene(index)
        image, truth = (render_clean if self.clean_domain else render)(scene, noise)
        tips = np.full((self.max_tips, 2), np.nan, dtype=np.float32)
        z_offset = np.full(self.max_tips, np.nan, dtype=np.float32)
        valid = np.zeros(self.max_tips, dtype=bool)
        focused = np.zeros(self.max_tips, dtype=bool)
        inside = [t for t in truth if t.in_frame][: self.max_tips]
        for k, tip in enumerate(inside):
            tips[k] = (tip.x_px, tip.y_px)
            z_offset[k] = tip.z_offset_um
            valid[k] = True
            focused[k] = tip.in_focus
        return {
            "image": torch.from_numpy(normalise_image(image))[None],
            "tips_px": torch.from_numpy(tips),
            "valid": torch.from_numpy(valid),
            "in_focus": torch.from_numpy(focused),
            "z_offset_um": torch.from_numpy(z_offset),
            "count": torch.tensor(len(inside), dtype=torch.int64),
            "pixel_size_um": torch.tensor(scene.view.pixel_size_um, dtype=torch.float32),
            "seed": torch.tensor(self.sampler.seed(index), dtype=torch.int64),
        }
