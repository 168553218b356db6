"""The two unpaired domains of the CycleGAN, as 64 x 64 crops at the model's pixel size.

In vivo: frames of the simulator's training distribution (:func:`patchpilot.scene.render`).
Clean (the paper's ex vivo domain): single in-focus pipettes on a plain background
(:func:`patchpilot.scene.render_clean`) from *other* scene families (seed offset
:data:`CLEAN_FIRST`), so no clean crop is the twin of an in vivo crop: the training is
unpaired, as it must be for real data.

Crops are centred on a random in-frame tip (jittered by up to ``jitter_px``), as the paper
crops around labelled tips; a fraction are taken at random places instead, in both domains,
so the generator also learns to leave tip-free crops tip-free (at inference crops sit on
candidate tips, and some candidates are wrong).
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from patchpilot.localisation._errors import LocaliserError
from patchpilot.localisation.cyclegan.crops import crop_windows, to_unit_range
from patchpilot.localisation.preprocess import normalise, rescale_to_model, to_scaled_px
from patchpilot.localisation.samples import SampleSet
from patchpilot.localisation.sources import generator_version

__all__ = ["CLEAN_FIRST", "DomainFrames", "clean_set", "render_clean_split"]

CLEAN_FIRST = 500_000
"""First training-split family used for clean frames (in vivo sets start at 0)."""


def _render_clean_one(args: tuple[str, int]) -> tuple[NDArray[np.uint16], float, NDArray[Any]]:
    from patchpilot.scene import SceneSampler, render_clean

    split, index = args
    scene, noise = SceneSampler.for_split(split, clean_domain=True).scene(index)
    image, truth = render_clean(scene, noise)
    tips = np.array([(t.x_px, t.y_px) for t in truth if t.in_frame], np.float64).reshape(-1, 2)
    return image, float(scene.view.pixel_size_um), tips


def render_clean_split(
    split: str, n: int, *, first: int = CLEAN_FIRST, workers: int = 1
) -> SampleSet:
    """Render ``n`` clean-domain frames (one in-focus pipette each) of ``split``.

    Raises
    ------
    LocaliserError
        Unknown split or a family range outside it.
    """
    from patchpilot.scene import SPLIT_SEEDS

    if split not in SPLIT_SEEDS:
        raise LocaliserError(f"unknown split {split!r}; use one of {sorted(SPLIT_SEEDS)}")
    low, high = SPLIT_SEEDS[split]
    if n < 1 or first < 0 or low + first + n > high:
        raise LocaliserError(f"split {split!r} has no families {first}..{first + n - 1}")
    jobs = [(split, first + i) for i in range(n)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            rendered = list(pool.map(_render_clean_one, jobs, chunksize=16))
    else:
        rendered = [_render_clean_one(job) for job in jobs]
    return SampleSet(
        images=[r[0] for r in rendered],
        pixel_size_um=np.array([r[1] for r in rendered]),
        tips_px=[r[2] for r in rendered],
        n_pipettes=np.ones(n, dtype=np.int64),
        provenance={
            "source": "simulator, clean domain (render_clean)",
            "split": split,
            "seed_range": [low + first, low + first + n],
            "n_frames": n,
            "generator_version": generator_version(),
        },
    )


def clean_set(
    split: str,
    n: int,
    *,
    first: int = CLEAN_FIRST,
    workers: int = 1,
    cache_dir: str | Path | None = None,
) -> SampleSet:
    """:func:`render_clean_split`, read from / written to ``cache_dir`` (None: no cache)."""
    if cache_dir is None:
        return render_clean_split(split, n, first=first, workers=workers)
    key = json.dumps(["clean", split, first, n, generator_version()])
    name = f"clean-{split}-{first}-{n}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz"
    path = Path(cache_dir) / name
    if path.is_file():
        return SampleSet.load(path)
    samples = render_clean_split(split, n, first=first, workers=workers)
    samples.save(path)
    return samples


class DomainFrames:
    """One domain's frames, resampled to ``pixel_size_um`` and normalised once, from which
    random crops are drawn.

    Raises
    ------
    LocaliserError
        If no frame holds an in-frame tip.
    """

    def __init__(self, samples: SampleSet, pixel_size_um: float) -> None:
        self.images: list[NDArray[np.float16]] = []
        self.tips: list[NDArray[np.float64]] = []
        for raw, size, tips in zip(
            samples.images, samples.pixel_size_um, samples.tips_px, strict=True
        ):
            image, scale = rescale_to_model(raw.astype(np.float32), float(size), pixel_size_um)
            self.images.append(normalise(image).astype(np.float16))
            self.tips.append(to_scaled_px(np.asarray(tips).reshape(-1, 2), scale))
        self.with_tips = [i for i, t in enumerate(self.tips) if len(t)]
        if not self.with_tips:
            raise LocaliserError("no frame of this domain holds a tip to crop around")

    def __len__(self) -> int:
        return len(self.images)

    def sample(
        self,
        rng: np.random.Generator,
        count: int,
        size_px: int,
        *,
        jitter_px: float = 8.0,
        random_fraction: float = 0.2,
    ) -> NDArray[np.float32]:
        """(count, 1, S, S) crops scaled to [-1, 1], randomly flipped and transposed."""
        out = np.empty((count, 1, size_px, size_px), np.float32)
        for k in range(count):
            if rng.random() < random_fraction:
                index = int(rng.integers(len(self.images)))
                rows, cols = self.images[index].shape
                centre = rng.uniform([0.0, 0.0], [cols - 1.0, rows - 1.0])
            else:
                index = self.with_tips[int(rng.integers(len(self.with_tips)))]
                tips = self.tips[index]
                centre = tips[int(rng.integers(len(tips)))] + rng.uniform(-jitter_px, jitter_px, 2)
            crop = crop_windows(self.images[index], centre[None], size_px).crops
            crop, _, _ = to_unit_range(crop)
            patch = crop[0]
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
            if rng.random() < 0.5:
                patch = patch[::-1, :]
            if rng.random() < 0.5:
                patch = patch.T
            out[k, 0] = patch
        return out
