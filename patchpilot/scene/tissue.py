"""The tissue volume under the pipettes: autofluorescence texture, labelled nuclei, vessels.

A :class:`Tissue` is built once and rendered many times. Its texture comes from a bank of
periodic noise fields (one per process, fixed seed) read at a per-tissue offset, so a tissue is
a few numbers plus its nuclei and vessels. The fluorescence of one focal plane over a region
(a "slab") is cached, so frames at the same focus only resample it with the scan's motion.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from patchpilot.scene._numerics import norm_cdf, sample_periodic, texture_bank
from patchpilot.scene._validate import SceneError

__all__ = ["Nuclei", "Tissue", "Vessels"]

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Nuclei:
    """Labelled nuclei as spheres: centres (n, 3) µm, radii (n,) µm, brightness (n,).

    Brightness is the nucleus's fluorescence above the background (background units).
    """

    centers_um: F64
    radii_um: F64
    brightness: F64

    def __len__(self) -> int:
        return int(self.radii_um.shape[0])

    @classmethod
    def empty(cls) -> Nuclei:
        return cls(np.zeros((0, 3)), np.zeros(0), np.zeros(0))


@dataclass(frozen=True, eq=False)
class Vessels:
    """Blood vessels as capsules (segments with a radius) that exclude the dye: dark tubes.

    ``darkness`` is the fraction of the surrounding fluorescence missing inside (0 to 1).
    """

    starts_um: F64
    ends_um: F64
    radii_um: F64
    darkness: F64

    def __len__(self) -> int:
        return int(self.radii_um.shape[0])

    @classmethod
    def empty(cls) -> Vessels:
        return cls(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0))


class Tissue:
    """A 3D fluorescent volume in sample µm: dye-filled medium above ``surface_z_um``,
    textured tissue with nuclei and vessels below.

    Parameters
    ----------
    surface_z_um
        Height of the brain surface.
    medium_brightness, tissue_brightness
        Mean fluorescence of the medium above the surface and of the tissue below it.
    grain_contrast, blotch_contrast, haze_contrast
        Standard deviations (relative) of fine grain (~1 µm), neuropil blotches (~4 µm) and
        slow haze (~35 µm) in the tissue texture.
    texture_offset_um
        Where in the periodic texture bank this tissue reads (x, y, z phase).
    nuclei, vessels
        Structures in the volume; ``None`` for none.

    Raises
    ------
    SceneError
        Negative or non-finite brightness or contrast.
    """

    def __init__(
        self,
        *,
        surface_z_um: float = 0.0,
        medium_brightness: float = 1.0,
        tissue_brightness: float = 0.9,
        grain_contrast: float = 0.12,
        blotch_contrast: float = 0.08,
        haze_contrast: float = 0.08,
        texture_offset_um: tuple[float, float, float] = (0.0, 0.0, 0.0),
        nuclei: Nuclei | None = None,
        vessels: Vessels | None = None,
    ) -> None:
        values = {
            "medium_brightness": medium_brightness,
            "tissue_brightness": tissue_brightness,
            "grain_contrast": grain_contrast,
            "blotch_contrast": blotch_contrast,
            "haze_contrast": haze_contrast,
        }
        for name, value in values.items():
            if not math.isfinite(value) or value < 0:
                raise SceneError(f"Tissue.{name} must be a finite number >= 0, got {value!r}")
        if not math.isfinite(surface_z_um):
            raise SceneError(f"Tissue.surface_z_um must be finite, got {surface_z_um!r}")
        self.surface_z_um = float(surface_z_um)
        self.medium_brightness = float(medium_brightness)
        self.tissue_brightness = float(tissue_brightness)
        self.grain_contrast = float(grain_contrast)
        self.blotch_contrast = float(blotch_contrast)
        self.haze_contrast = float(haze_contrast)
        self.texture_offset_um = tuple(float(v) for v in texture_offset_um)
        self.nuclei = nuclei if nuclei is not None else Nuclei.empty()
        self.vessels = vessels if vessels is not None else Vessels.empty()
        self._cache: OrderedDict[tuple[Any, ...], F32] = OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"Tissue(surface_z_um={self.surface_z_um:g}, {len(self.nuclei)} nuclei, "
            f"{len(self.vessels)} vessels)"
        )

    @classmethod
    def uniform(cls, brightness: float = 1.0) -> Tissue:
        """A flat field: the same fluorescence everywhere, no texture, nuclei or vessels."""
        return cls(
            surface_z_um=-1e6,
            medium_brightness=brightness,
            tissue_brightness=brightness,
            grain_contrast=0.0,
            blotch_contrast=0.0,
            haze_contrast=0.0,
        )

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        extent_um: tuple[float, ...] = (400.0, 400.0, 600.0),
        center_um: tuple[float, float] = (0.0, 0.0),
        surface_z_um: float = 0.0,
        nucleus_density_per_mm3: float = 8000.0,
        vessel_density_per_mm3: float = 150.0,
    ) -> Tissue:
        """A random cortex-like volume.

        Parameters
        ----------
        rng
            Source of randomness; the same seed gives the same tissue.
        extent_um
            (width, height) or (width, height, depth) of the volume holding nuclei and
            vessels, centred on ``center_um`` and extending ``depth`` below the surface.
            The texture itself is unbounded.
        nucleus_density_per_mm3, vessel_density_per_mm3
            Mean counts of labelled nuclei (8 to 15 µm across) and of visible vessels.
        """
        if len(extent_um) not in (2, 3) or not all(math.isfinite(e) and e > 0 for e in extent_um):
            raise SceneError(
                f"Tissue.random extent_um must be 2 or 3 positive sizes, got {extent_um!r}"
            )
        width, height = float(extent_um[0]), float(extent_um[1])
        depth = float(extent_um[2]) if len(extent_um) == 3 else 600.0
        low = np.array([center_um[0] - width / 2, center_um[1] - height / 2, surface_z_um - depth])
        size = np.array([width, height, depth])
        volume_mm3 = width * height * depth * 1e-9

        count = rng.poisson(nucleus_density_per_mm3 * volume_mm3)
        centers = low + rng.random((count, 3)) * size
        radii = rng.uniform(4.0, 7.5, count)
        brightness = rng.lognormal(np.log(0.6), 0.5, count)
        nuclei = Nuclei(centers, radii, brightness)

        n_vessels = rng.poisson(vessel_density_per_mm3 * volume_mm3)
        mids = low + rng.random((n_vessels, 3)) * size
        vertical = rng.random(n_vessels) < 0.5  # penetrating vessels run roughly along z
        tilt = np.where(vertical, rng.uniform(0, 25, n_vessels), rng.uniform(50, 90, n_vessels))
        azimuth = rng.uniform(0, 360, n_vessels)
        t, a = np.deg2rad(tilt), np.deg2rad(azimuth)
        direction = np.stack([np.sin(t) * np.cos(a), np.sin(t) * np.sin(a), np.cos(t)], axis=1)
        half = rng.uniform(60, 250, n_vessels)[:, None]
        vessels = Vessels(
            mids - direction * half,
            mids + direction * half,
            rng.lognormal(np.log(4.0), 0.4, n_vessels).clip(2.0, 14.0),
            rng.uniform(0.5, 0.9, n_vessels),
        )
        return cls(
            surface_z_um=surface_z_um,
            medium_brightness=float(rng.uniform(0.8, 1.2)),
            tissue_brightness=float(rng.uniform(0.6, 1.1)),
            grain_contrast=float(rng.uniform(0.04, 0.2)),
            blotch_contrast=float(rng.uniform(0.02, 0.12)),
            haze_contrast=float(rng.uniform(0.03, 0.15)),
            texture_offset_um=(
                float(rng.uniform(0, 512)),
                float(rng.uniform(0, 512)),
                float(rng.uniform(0, 100)),
            ),
            nuclei=nuclei,
            vessels=vessels,
        )

    def slab(
        self,
        focus_um: float,
        texel_um: float,
        origin_index: tuple[int, int],
        shape: tuple[int, int],
        psf_sigma_z_um: float,
    ) -> F32:
        """Fluorescence of the plane ``z = focus_um`` on a texel grid (cached).

        The grid's texel (row i, column j) sits at sample
        ``((origin_index[1] + j) * texel_um, (origin_index[0] + i) * texel_um)``.
        """
        # Focus snaps to 0.25 µm (far below the axial PSF) so that breathing's small axial
        # motion reuses a handful of cached planes.
        focus_um = round(focus_um * 4) / 4
        key = (focus_um, texel_um, origin_index, shape, round(psf_sigma_z_um, 3))
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        xs = (origin_index[1] + np.arange(shape[1], dtype=np.float64)) * texel_um
        ys = (origin_index[0] + np.arange(shape[0], dtype=np.float64)) * texel_um
        out = self._build_slab(focus_um, xs, ys, psf_sigma_z_um)
        with self._lock:
            self._cache[key] = out
            while len(self._cache) > 8:
                self._cache.popitem(last=False)
        return out

    def _texture(self, focus_um: float, xs: F64, ys: F64) -> F32:
        bank = texture_bank()
        ox, oy, oz = self.texture_offset_um
        # Two quadrature fields per scale, mixed by depth: the texture changes with focus
        # over ~8 µm (grain) and ~30 µm (blotches).
        fields = []
        for name, contrast, period_um in (
            ("grain", self.grain_contrast, 8.0),
            ("blotch", self.blotch_contrast, 30.0),
        ):
            phase = 2 * np.pi * (focus_um + oz) / period_um
            fields.append((bank[f"{name}_a"], contrast * math.cos(phase)))
            fields.append((bank[f"{name}_b"], contrast * math.sin(phase)))
        fields.append((bank["haze"], self.haze_contrast))
        out = sample_periodic(fields, xs + ox, ys + oy)
        out += np.float32(1.0)
        return np.maximum(out, np.float32(0.05))

    def _build_slab(self, focus_um: float, xs: F64, ys: F64, sigma_z_um: float) -> F32:
        depth_um = self.surface_z_um - focus_um
        tissue_weight = float(norm_cdf(np.array([depth_um / 3.0], dtype=np.float32))[0])
        plane = np.full((ys.size, xs.size), self.medium_brightness, dtype=np.float32)
        if self.haze_contrast > 0 and tissue_weight < 0.999:
            ox, oy, _ = self.texture_offset_um
            haze = sample_periodic([(texture_bank()["haze"], 1.0)], xs + ox, ys + oy)
            plane *= 1 + np.float32(0.5 * self.haze_contrast) * haze
        if tissue_weight > 0.001:
            tissue = self._texture(focus_um, xs, ys) * np.float32(self.tissue_brightness)
            self._add_nuclei(tissue, focus_um, xs, ys, sigma_z_um)
            self._cut_vessels(tissue, focus_um, xs, ys)
            plane = plane * np.float32(1 - tissue_weight) + tissue * np.float32(tissue_weight)
        return plane

    def _add_nuclei(self, plane: F32, focus_um: float, xs: F64, ys: F64, sigma_z_um: float) -> None:
        nuclei = self.nuclei
        if len(nuclei) == 0:
            return
        step = float(xs[1] - xs[0]) if xs.size > 1 else 1.0
        dz = nuclei.centers_um[:, 2] - focus_um
        reach = nuclei.radii_um + 3 * sigma_z_um
        near = np.abs(dz) < reach
        near &= (nuclei.centers_um[:, 0] > xs[0] - reach) & (
            nuclei.centers_um[:, 0] < xs[-1] + reach
        )
        near &= (nuclei.centers_um[:, 1] > ys[0] - reach) & (
            nuclei.centers_um[:, 1] < ys[-1] + reach
        )
        grain = texture_bank()["grain_a"]
        for k in np.flatnonzero(near):
            cx, cy, _ = nuclei.centers_um[k]
            radius = nuclei.radii_um[k]
            c0 = max(0, int((cx - radius - xs[0]) / step) - 1)
            c1 = min(xs.size, int((cx + radius - xs[0]) / step) + 3)
            r0 = max(0, int((cy - radius - ys[0]) / step) - 1)
            r1 = min(ys.size, int((cy + radius - ys[0]) / step) + 3)
            if c0 >= c1 or r0 >= r1:
                continue
            px = xs[c0:c1][None, :] - cx
            py = ys[r0:r1][:, None] - cy
            chord = np.sqrt(np.maximum(radius**2 - px**2 - py**2, 0.0)).astype(np.float32)
            shift = np.float32(dz[k])
            sz = np.float32(sigma_z_um)
            overlap = norm_cdf((chord - shift) / sz) - norm_cdf((-chord - shift) / sz)
            # Chromatin texture inside the nucleus, read from the grain field.
            texture = 1 + sample_periodic(
                [(grain, 0.3)], xs[c0:c1] + 97.0 * k, ys[r0:r1] + 31.0 * k
            )
            plane[r0:r1, c0:c1] += np.float32(nuclei.brightness[k]) * texture * overlap

    def _cut_vessels(self, plane: F32, focus_um: float, xs: F64, ys: F64) -> None:
        vessels = self.vessels
        step = float(xs[1] - xs[0]) if xs.size > 1 else 1.0
        for k in range(len(vessels)):
            start, end = vessels.starts_um[k], vessels.ends_um[k]
            reach = vessels.radii_um[k] + 3.0  # the soft edge reaches ~3 µm beyond the wall
            axis = end - start
            # Where along the axis the tube can touch the focal plane.
            if abs(axis[2]) > 1e-9:
                t_a = (focus_um - reach - start[2]) / axis[2]
                t_b = (focus_um + reach - start[2]) / axis[2]
                t_low, t_high = max(0.0, min(t_a, t_b)), min(1.0, max(t_a, t_b))
            elif abs(focus_um - start[2]) <= reach:
                t_low, t_high = 0.0, 1.0
            else:
                continue
            if t_low > t_high:
                continue
            ends = start[:2] + np.outer([t_low, t_high], axis[:2])
            low = ends.min(axis=0) - reach
            high = ends.max(axis=0) + reach
            c0 = max(0, int((low[0] - xs[0]) / step))
            c1 = min(xs.size, int((high[0] - xs[0]) / step) + 2)
            r0 = max(0, int((low[1] - ys[0]) / step))
            r1 = min(ys.size, int((high[1] - ys[0]) / step) + 2)
            if c0 >= c1 or r0 >= r1:
                continue
            length2 = float(axis @ axis)
            px = (xs[c0:c1] - start[0])[None, :].astype(np.float32)
            py = (ys[r0:r1] - start[1])[:, None].astype(np.float32)
            pz = np.float32(focus_um - start[2])
            t = np.clip((px * axis[0] + py * axis[1] + pz * axis[2]) / length2, 0.0, 1.0)
            dist2 = (px - t * axis[0]) ** 2 + (py - t * axis[1]) ** 2 + (pz - t * axis[2]) ** 2
            inside = norm_cdf(np.float32(vessels.radii_um[k]) - np.sqrt(dist2))
            plane[r0:r1, c0:c1] *= 1 - np.float32(vessels.darkness[k]) * inside
