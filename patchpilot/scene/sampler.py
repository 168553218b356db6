"""The training distribution: random scenes covering what rigs and experiments vary.

A scene *family* is one seed: :func:`scene_for_seed` turns it into a scene (tissue, pipettes,
optics, scan and detector settings) and a noise stream, and a family may yield a short
sequence of frames (:func:`scene_sequence`). Splits are disjoint seed ranges
(:data:`SPLIT_SEEDS`), so train, validation and test never share a family, let alone a frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from patchpilot.scene.model import (
    Acquisition,
    Optics,
    PipettePose,
    Scene,
    SceneError,
    TissueMotion,
    View,
)
from patchpilot.scene.tissue import Tissue

__all__ = [
    "PIXEL_SIZE_RANGE_UM",
    "SPLIT_SEEDS",
    "SceneSampler",
    "random_scene",
    "scene_for_seed",
    "scene_sequence",
    "split_of_seed",
]

SPLIT_SEEDS: dict[str, tuple[int, int]] = {
    "train": (0, 1_000_000),
    "val": (1_000_000, 1_100_000),
    "test": (1_100_000, 1_200_000),
}
"""Half-open seed ranges of the scene families in each split; they never overlap."""

PIXEL_SIZE_RANGE_UM = (0.5, 2.0)
"""Pixel sizes rigs use (µm); the default training range."""


def split_of_seed(seed: int) -> str | None:
    """The split whose seed range holds ``seed``, or None."""
    for name, (low, high) in SPLIT_SEEDS.items():
        if low <= seed < high:
            return name
    return None


def _draw_range(rng: np.random.Generator, value: float | tuple[float, float], name: str) -> float:
    if isinstance(value, tuple):
        low, high = float(value[0]), float(value[1])
        if not (math.isfinite(low) and math.isfinite(high)) or low > high:
            raise SceneError(
                f"random_scene {name} range must be (low, high) with low <= high, got {value!r}"
            )
        return float(rng.uniform(low, high)) if high > low else low
    return float(value)


def _pipette_count(
    rng: np.random.Generator, n_pipettes: int | tuple[int, int], atypical: float
) -> int:
    if isinstance(n_pipettes, tuple):
        low, high = int(n_pipettes[0]), int(n_pipettes[1])
        if not 0 <= low <= high <= 8:
            raise SceneError(
                f"random_scene n_pipettes range must lie within 0..8, got {n_pipettes!r}"
            )
        if rng.random() < atypical:
            return int(rng.integers(0, 9))  # the rare 0 or 5 to 8 pipettes too
        return int(rng.integers(low, high + 1))
    if not 0 <= int(n_pipettes) <= 8:
        raise SceneError(f"random_scene n_pipettes must be 0 to 8, got {n_pipettes!r}")
    return int(n_pipettes)


def _tip_layout(rng: np.random.Generator, count: int, fov_um: float) -> np.ndarray:
    """Tips 20 to 150 µm apart around a convergence point, some near or past the frame edge."""
    if count == 0:
        return np.zeros((0, 2))
    centre = rng.uniform(-0.3, 0.3, 2) * fov_um
    spread = rng.uniform(20.0, min(150.0, 0.6 * fov_um + 20.0))
    for _ in range(50):
        tips = centre + rng.normal(0.0, spread / 2.5, (count, 2))
        gaps = np.linalg.norm(tips[:, None] - tips[None, :], axis=-1) + np.eye(count) * 1e9
        if count < 2 or (gaps.min() >= 20.0 and gaps[gaps < 1e8].max() <= 150.0):
            break
    for k in range(count):  # some tips at the edge of the frame or just outside it
        if rng.random() < 0.12:
            axis = int(rng.integers(0, 2))
            side = 1 if rng.random() < 0.5 else -1
            tips[k, axis] = side * fov_um * rng.uniform(0.42, 0.65)
    return tips


def _yaws(rng: np.random.Generator, tips: np.ndarray) -> np.ndarray:
    """Advance directions: from different sides toward the tips, sometimes crossing."""
    count = len(tips)
    if count == 0:
        return np.zeros(0)
    if rng.random() < 0.25:  # anything goes: shanks often cross in projection
        return rng.uniform(0, 360, count)
    base = rng.uniform(0, 360)
    yaws = base + 360.0 * np.arange(count) / max(count, 1) + rng.normal(0, 20, count)
    # Point each pipette roughly at where the tips gather, from outside.
    centre = tips.mean(axis=0)
    out = []
    for tip, yaw in zip(tips, yaws, strict=True):
        away = tip - centre
        if np.linalg.norm(away) > 15 and rng.random() < 0.5:
            yaw = math.degrees(math.atan2(-away[1], -away[0])) + rng.normal(0, 25)
        out.append(yaw % 360)
    return np.asarray(out)


def _pose(
    rng: np.random.Generator, k: int, tip_xy: np.ndarray, yaw: float, focus: float
) -> PipettePose:
    kind = rng.random()
    if kind < 0.55:
        dz = rng.normal(0.0, 1.5)  # in focus
    elif kind < 0.8:
        dz = rng.uniform(-25.0, 25.0)
    else:
        dz = rng.uniform(-60.0, 60.0)
    pick = rng.random()
    polarity: str | float = "dark" if pick < 0.55 else "bright" if pick < 0.72 else "mixed"
    if polarity == "mixed" and rng.random() < 0.5:
        polarity = float(rng.uniform(0.1, 0.9))
    pitch = float(rng.uniform(15.0, 45.0))
    velocity = (0.0, 0.0, 0.0)
    if rng.random() < 0.25:  # moving along its axis during the scan, now and then fast
        speed = float(rng.choice([rng.uniform(2, 30), rng.uniform(30, 400)]))
        axis = PipettePose("_", (0, 0, 0), pitch, yaw).axis * speed * rng.choice([-1.0, 1.0])
        velocity = (float(axis[0]), float(axis[1]), float(axis[2]))
    return PipettePose(
        pipette_id=f"p{k + 1}",
        tip_um=(float(tip_xy[0]), float(tip_xy[1]), float(focus + dz)),
        pitch_deg=pitch,
        yaw_deg=float(yaw),
        tip_diameter_um=float(rng.uniform(1.0, 2.0)),
        taper_half_angle_deg=float(rng.uniform(2.0, 8.0)),
        polarity=polarity,
        plume_strength=float(rng.uniform(0.1, 1.0)) if rng.random() < 0.6 else 0.0,
        plume_sigma_um=float(rng.uniform(10.0, 40.0)),
        velocity_um_s=velocity,
        lumen_brightness=float(rng.uniform(1.5, 8.0)),
        tip_speck=float(rng.uniform(0.0, 2.5)) if rng.random() < 0.7 else 0.0,
        shadow_strength=float(rng.uniform(0.5, 0.9)),
        wall_fraction=float(rng.uniform(0.2, 0.45)),
    )


def random_scene(
    rng: np.random.Generator,
    n_pipettes: int | tuple[int, int] = (1, 4),
    pixel_size_um: float | tuple[float, float] = PIXEL_SIZE_RANGE_UM,
    size_px: int | tuple[int, int] = 256,
    *,
    atypical_fraction: float = 0.08,
    clean_domain: bool = False,
    time_s: float | None = None,
) -> Scene:
    """A random scene from the training distribution.

    Covers pixel sizes (``pixel_size_um`` value or range), signal-to-noise from ~1.4 to ~11
    at the background, 0 to 8 pipettes (``n_pipettes`` range, plus ``atypical_fraction`` of
    scenes with any count 0 to 8), pipettes converging from different sides with shanks
    sometimes crossing, tips 20 to 150 µm apart, near or outside the frame edge, above and
    below focus, dark, bright and mixed polarity, dye plumes, pipette and tissue motion.

    Parameters
    ----------
    rng
        The only source of randomness: the same state gives the same scene.
    size_px
        Frame width and height (one int) or (width, height).
    clean_domain
        Render the ex vivo domain (one pipette, in focus) instead.

    Raises
    ------
    SceneError
        Ranges that are inverted or outside what the renderer supports.
    """
    width, height = (size_px, size_px) if isinstance(size_px, int) else size_px
    pixel = _draw_range(rng, pixel_size_um, "pixel_size_um")
    if not 0 < pixel <= 50:
        raise SceneError(
            f"random_scene pixel_size_um must be positive (<= 50 µm), got {pixel_size_um!r}"
        )
    count = 1 if clean_domain else _pipette_count(rng, n_pipettes, atypical_fraction)
    fov_um = max(width, height) * pixel
    surface = 0.0
    # The paper's frames show pipettes above the brain; the dry-run goes into it.
    focus = float(rng.uniform(0.0, 50.0) if rng.random() < 0.45 else rng.uniform(-150.0, 0.0))
    center = (float(rng.uniform(-2000, 2000)), float(rng.uniform(-2000, 2000)))
    tissue = Tissue.random(
        rng, extent_um=(fov_um + 80.0, fov_um + 80.0, 400.0), center_um=center, surface_z_um=surface
    )
    view = View(
        fov_center_um=center, focus_um=focus, width_px=width, height_px=height, pixel_size_um=pixel
    )
    tips = _tip_layout(rng, count, fov_um) + np.asarray(center)
    yaws = _yaws(rng, tips)
    poses = tuple(_pose(rng, k, tips[k], float(yaws[k]), focus) for k in range(count))
    if clean_domain:
        poses = tuple(
            replace(p, tip_um=(p.tip_um[0], p.tip_um[1], focus), velocity_um_s=(0.0, 0.0, 0.0))
            for p in poses
        )
    optics = Optics(
        psf_sigma_xy_um=float(rng.uniform(0.3, 0.6)),
        psf_sigma_z_um=float(rng.uniform(1.2, 3.0)),
        axial_fade_um=float(rng.uniform(25.0, 100.0)),
        defocus_slope=float(rng.uniform(0.2, 0.45)),
        vignetting=float(rng.uniform(0.0, 0.6)),
        illumination_tilt=(float(rng.uniform(-0.2, 0.2)), float(rng.uniform(-0.2, 0.2))),
    )
    dwell = float(rng.choice([0.5, 1.0, 2.0, 3.2, 4.0]))
    background_photons = float(np.exp(rng.uniform(np.log(10.0), np.log(150.0))))
    power = float(rng.uniform(0.8, 1.2))
    acquisition = Acquisition(
        pixel_dwell_us=dwell,
        line_retrace_ms=float(rng.uniform(0.1, 1.1)),
        bidirectional=bool(rng.random() < 0.2),
        laser_power=power,
        photon_rate_per_us=background_photons / (dwell * power**2),
        detector_gain_adu=float(np.exp(rng.uniform(np.log(2.0), np.log(40.0)))),
        excess_noise_factor=float(rng.uniform(1.0, 1.6)),
        offset_adu=float(rng.uniform(0.0, 300.0)),
        read_noise_adu=float(rng.uniform(0.0, 5.0)),
        bit_depth=int(rng.choice([12, 16])),
    )
    motion = TissueMotion(
        heart_amplitude_um=float(rng.uniform(0.0, 1.5)),
        heart_rate_hz=float(rng.uniform(5.0, 10.0)),
        breath_amplitude_um=float(rng.uniform(0.0, 4.0)),
        breath_rate_hz=float(rng.uniform(1.0, 2.0)),
        direction_deg=float(rng.uniform(0, 360)),
        axial_fraction=float(rng.uniform(0.0, 0.5)),
        heart_phase=float(rng.uniform(0, 2 * np.pi)),
        breath_phase=float(rng.uniform(0, 2 * np.pi)),
    )
    return Scene(
        tissue=tissue,
        pipettes=poses,
        view=view,
        optics=optics,
        acquisition=acquisition,
        time_s=float(rng.uniform(0.0, 100.0)) if time_s is None else time_s,
        tissue_motion=TissueMotion.still() if clean_domain else motion,
        clean_domain=clean_domain,
    )


def scene_for_seed(seed: int, **kwargs: Any) -> tuple[Scene, np.random.Generator]:
    """The scene of family ``seed`` and the noise generator for its frames.

    The two come from independent streams of one ``SeedSequence``, so changing how many
    noise draws a frame takes never changes the scene.
    """
    scene_seq, noise_seq = np.random.SeedSequence(int(seed)).spawn(2)
    scene = random_scene(np.random.default_rng(scene_seq), **kwargs)
    return scene, np.random.default_rng(noise_seq)


def scene_sequence(scene: Scene, n_frames: int) -> Iterator[Scene]:
    """``n_frames`` consecutive frames of one scene: time advances by the frame period and
    the pipettes move by their velocities."""
    period = scene.frame_time_s()
    for k in range(int(n_frames)):
        yield scene.advanced(k * period)


@dataclass(frozen=True)
class SceneSampler:
    """Scenes of one split: family ``i`` is seed ``seed_range[0] + i``.

    Parameters
    ----------
    seed_range
        A split name from :data:`SPLIT_SEEDS` or a half-open (low, high) seed range.
    scene_kwargs
        Passed to :func:`random_scene` (``n_pipettes``, ``pixel_size_um``, ``size_px``...).

    Raises
    ------
    SceneError
        Unknown split name or an empty or negative range.
    """

    seed_range: str | tuple[int, int] = "train"
    scene_kwargs: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.seed_range, str) and self.seed_range not in SPLIT_SEEDS:
            raise SceneError(
                f"SceneSampler: unknown split {self.seed_range!r}; use one of {sorted(SPLIT_SEEDS)}"
            )
        low, high = self.seeds
        if not 0 <= low < high:
            raise SceneError(
                "SceneSampler.seed_range must be a non-empty (low, high) with low >= 0, "
                f"got {self.seed_range!r}"
            )

    @classmethod
    def for_split(cls, split: str, **scene_kwargs: Any) -> SceneSampler:
        return cls(split, tuple(sorted(scene_kwargs.items())))

    @property
    def seeds(self) -> tuple[int, int]:
        if isinstance(self.seed_range, str):
            return SPLIT_SEEDS[self.seed_range]
        return (int(self.seed_range[0]), int(self.seed_range[1]))

    def __len__(self) -> int:
        low, high = self.seeds
        return high - low

    def seed(self, index: int) -> int:
        if not 0 <= index < len(self):
            raise IndexError(f"scene index {index} outside 0..{len(self) - 1}")
        return self.seeds[0] + int(index)

    def scene(self, index: int) -> tuple[Scene, np.random.Generator]:
        """Scene ``index`` of this split and its noise generator."""
        return scene_for_seed(self.seed(index), **dict(self.scene_kwargs))

    def __iter__(self) -> Iterator[Scene]:
        for index in range(len(self)):
            yield self.scene(index)[0]
