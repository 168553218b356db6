"""Where labelled frames come from: the simulator (split by scene family) or COCO keypoints.

Simulated sets are rendered once with :func:`patchpilot.scene.render` from a
:class:`patchpilot.scene.SceneSampler` split (disjoint seed ranges: train, val, test never
share a scene family) and cached as ``.npz``; the cache name holds the split, the seed range,
the scene settings and a fingerprint of the renderer's source, so a changed renderer never
reuses stale frames.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from patchpilot.localisation._errors import LocaliserError
from patchpilot.localisation.samples import SampleSet

__all__ = ["DEFAULT_CACHE", "coco_set", "generator_version", "render_split", "simulated_set"]

DEFAULT_CACHE = Path(os.environ.get("PATCHPILOT_CACHE", Path.home() / ".cache" / "patchpilot"))

CACHE_FORMAT = "samples-2"
"""Bumped when the cached sample layout changes."""

Rendered = tuple[NDArray[np.uint16], float, NDArray[np.float64], int]


def generator_version() -> str:
    """The scene package's declared version (if any) plus a hash of its source files."""
    import patchpilot.scene as scene

    digest = hashlib.sha256()
    for path in sorted(Path(scene.__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    declared = getattr(scene, "GENERATOR_VERSION", getattr(scene, "__version__", "unversioned"))
    return f"{declared}+{digest.hexdigest()[:12]}"


def _render_one(args: tuple[str, int, tuple[tuple[str, Any], ...]]) -> Rendered:
    from patchpilot.scene import SceneSampler, render

    split, index, kwargs = args
    sampler = SceneSampler(split, kwargs)
    scene, noise = sampler.scene(index)
    image, truth = render(scene, noise)
    view = scene.view
    rows = []
    for pose, tip in zip(scene.pipettes, truth, strict=True):
        if not tip.in_frame:
            continue
        end_x, end_y = tip.x_px, tip.y_px
        if tip.z_offset_um < 0:  # below focus: the shank crosses the focal plane further back
            back_um = -tip.z_offset_um / math.tan(math.radians(pose.pitch_deg))
            yaw = math.radians(pose.yaw_deg)
            end_x -= back_um * math.cos(yaw) / view.pixel_size_um
            end_y -= back_um * math.sin(yaw) / view.pixel_size_um
        rows.append((tip.x_px, tip.y_px, tip.z_offset_um, float(tip.in_focus), end_x, end_y))
    table = np.array(rows, dtype=np.float64).reshape(-1, 6)
    return image, float(view.pixel_size_um), table, len(truth)


def render_split(
    split: str,
    n: int,
    *,
    first: int = 0,
    workers: int = 1,
    scene_kwargs: dict[str, Any] | None = None,
) -> SampleSet:
    """Render scene families ``first .. first + n - 1`` of ``split``.

    Parameters
    ----------
    split
        ``"train"``, ``"val"`` or ``"test"`` (see ``patchpilot.scene.SPLIT_SEEDS``).
    n
        Number of frames (one per scene family).
    first
        Index of the first family within the split.
    workers
        Processes rendering in parallel.
    scene_kwargs
        Passed to ``patchpilot.scene.random_scene`` (pixel size range, pipette counts...).

    Raises
    ------
    LocaliserError
        Unknown split or a range beyond it.
    """
    from patchpilot.scene import SPLIT_SEEDS

    if split not in SPLIT_SEEDS:
        raise LocaliserError(f"unknown split {split!r}; use one of {sorted(SPLIT_SEEDS)}")
    low, high = SPLIT_SEEDS[split]
    if n < 1 or first < 0 or low + first + n > high:
        raise LocaliserError(f"split {split!r} has no families {first}..{first + n - 1}")
    kwargs = tuple(sorted((scene_kwargs or {}).items()))
    jobs = [(split, first + i, kwargs) for i in range(n)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            rendered = list(pool.map(_render_one, jobs, chunksize=16))
    else:
        rendered = [_render_one(job) for job in jobs]
    provenance = {
        "source": "simulator",
        "split": split,
        "seed_range": [low + first, low + first + n],
        "n_frames": n,
        "scene_kwargs": dict(kwargs),
        "generator_version": generator_version(),
    }
    tables = [r[2] for r in rendered]
    return SampleSet(
        images=[r[0] for r in rendered],
        pixel_size_um=np.array([r[1] for r in rendered]),
        tips_px=[t[:, 0:2] for t in tables],
        n_pipettes=np.array([r[3] for r in rendered], dtype=np.int64),
        provenance=provenance,
        tips_z_um=[t[:, 2] for t in tables],
        tips_required=[t[:, 3] > 0.5 for t in tables],
        tips_end_px=[t[:, 4:6] for t in tables],
    )


def simulated_set(
    split: str,
    n: int,
    *,
    first: int = 0,
    workers: int = 1,
    scene_kwargs: dict[str, Any] | None = None,
    cache_dir: str | Path | None = DEFAULT_CACHE,
) -> SampleSet:
    """:func:`render_split`, read from / written to ``cache_dir`` (None: no cache)."""
    if cache_dir is None:
        return render_split(split, n, first=first, workers=workers, scene_kwargs=scene_kwargs)
    key = json.dumps(
        [CACHE_FORMAT, split, first, n, sorted((scene_kwargs or {}).items()), generator_version()],
        default=str,
    )
    name = f"{split}-{first}-{n}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz"
    path = Path(cache_dir) / name
    if path.is_file():
        try:
            return SampleSet.load(path)
        except LocaliserError:
            pass  # damaged cache file: render again

    samples = render_split(split, n, first=first, workers=workers, scene_kwargs=scene_kwargs)
    samples.save(path)
    return samples


def coco_set(
    folder: str | Path,
    *,
    pixel_size_um: float | None = None,
    part: tuple[float, float] = (0.0, 1.0),
    limit: int | None = None,
) -> SampleSet:
    """Labelled frames from a COCO keypoints folder (a lab's own images), see
    ``patchpilot.scene.coco``; tips with visibility 0 are left out.

    Parameters
    ----------
    folder
        Folder with ``annotations.json`` (or the JSON file itself).
    pixel_size_um
        For images whose entry has no ``pixel_size_um``.
    part
        Fraction range of the frames, sorted by file name, to keep: ``(0, 0.9)`` and
        ``(0.9, 1)`` split a folder in contiguous blocks, so consecutive frames of one
        recording stay on one side (a separate validation folder is better still).
    limit
        Keep at most this many frames.

    Raises
    ------
    LocaliserError
        Unreadable folder, JSON or image (the message names it), or an empty selection.
    """
    from patchpilot.scene import SceneError
    from patchpilot.scene.coco import load_coco_keypoints, read_image

    try:
        labelled = sorted(
            load_coco_keypoints(folder, default_pixel_size_um=pixel_size_um),
            key=lambda item: str(item.path),
        )
        low, high = (round(f * len(labelled)) for f in part)
        chosen = labelled[low:high][:limit]
        images = [read_image(item.path) for item in chosen]
    except SceneError as exc:
        raise LocaliserError(f"COCO data: {exc}") from None
    if not chosen:
        raise LocaliserError(f"COCO data {folder}: no frames in part {part}")
    annotations = Path(folder)
    if annotations.is_dir():
        annotations = annotations / "annotations.json"
    return SampleSet(
        images=list(images),
        pixel_size_um=np.array([item.pixel_size_um for item in chosen]),
        tips_px=[np.asarray(item.tips_px, dtype=np.float64).reshape(-1, 2) for item in chosen],
        n_pipettes=np.array([len(item.tips_px) for item in chosen], dtype=np.int64),
        provenance={
            "source": "coco",
            "folder": str(folder),
            "part": list(part),
            "n_frames": len(chosen),
            "annotations_sha256": (
                hashlib.sha256(annotations.read_bytes()).hexdigest()
                if annotations.is_file()
                else None
            ),
        },
    )
