"""How one glass pipette changes the fluorescence at each scanned point.

The pipette is a cone of glass (outer radius ``R_o``, lumen radius ``R_i``) along its axis.
For a pixel, the vertical line through it crosses an inclined cylinder over a chord of length
``2 sqrt(R^2 - d^2) / cos(pitch)`` centred at the axis height ``h`` above focus, where ``d`` is
the pixel's perpendicular distance from the projected axis. Three effects follow:

- exclusion: the glass (and lumen) replaces the dye-filled medium over the part of the axial
  PSF (Gaussian, sigma_z) that the chord covers -> a sharp dark line where the pipette
  crosses focus;
- shadow: glass above focus aberrates part of the excitation cone, whose lateral sigma grows
  as ``defocus_slope * h``. The covered fraction of a Gaussian beam by a strip of width
  ``2 R_o`` gives the broad soft wedge that widens and fades with height;
- emission: dye in the lumen (bright polarity) glows where it is in focus, and fades out of
  focus over ``axial_fade_um``; a small speck at the tip opening.

All terms are evaluated per pixel at the pixel's own scan time (the pipette moves with its
velocity), so motion shears the pipette as a raster scan would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from patchpilot.scene._numerics import norm_cdf
from patchpilot.scene.model import Optics, PipettePose, View

__all__ = [
    "PipetteTerms",
    "pipette_box",
    "pipette_terms",
    "plume_terms",
    "sharp_band",
    "silhouette",
]

F32 = NDArray[np.floating[Any]]  # float32 in practice; numpy's stubs widen scalar products

_SHOULDER = 2.5e-4
"""Extra widening of the outer radius per µm along the shank, per µm (1/µm): ~22 µm more
radius 300 µm from the tip than the taper alone."""


@dataclass
class PipetteTerms:
    """Per-pixel factors over a box: fluorescence = shadow * (background * exclusion + emission)."""

    exclusion: F32
    shadow: F32
    emission: F32


@dataclass(frozen=True)
class _Geometry:
    s_h: F32  # projected distance from the tip along the shank (µm, > 0 on the shank)
    d: F32  # signed perpendicular distance from the projected axis (µm)
    h: F32  # height of the axis above focus at this projected position (µm)
    r_out: F32
    r_in: F32


def _geometry(
    pose: PipettePose, x_um: F32, y_um: F32, tau_s: F32, focus_um: float
) -> tuple[_Geometry, F32, F32]:
    pitch = math.radians(pose.pitch_deg)
    yaw = math.radians(pose.yaw_deg)
    ux, uy = np.float32(math.cos(yaw)), np.float32(math.sin(yaw))
    tx, ty, tz = pose.tip_um
    vx, vy, vz = pose.velocity_um_s
    dx = x_um - np.float32(tx)
    dy = y_um - np.float32(ty)
    if vx or vy:
        dx = dx - np.float32(vx) * tau_s
        dy = dy - np.float32(vy) * tau_s
    s_h = -(dx * ux + dy * uy)
    d = dy * ux - dx * uy
    h = np.float32(tz - focus_um) + np.float32(math.tan(pitch)) * s_h
    if vz:
        h = h + np.float32(vz) * tau_s
    along = np.maximum(s_h, np.float32(0)) / np.float32(math.cos(pitch))
    # A pulled pipette: the taper near the tip, widening faster toward the shoulder.
    taper = np.float32(math.tan(math.radians(pose.taper_half_angle_deg)))
    r_out = np.float32(pose.tip_diameter_um / 2) + along * (taper + np.float32(_SHOULDER) * along)
    r_in = r_out * np.float32(1 - pose.wall_fraction)
    return _Geometry(s_h, d, h, r_out, r_in), dx, dy


_TANH_SCALE = np.float32(0.851)  # norm_cdf's logistic slope, as a tanh argument


def _cdf_diff(upper: F32, lower: F32) -> F32:
    """``norm_cdf(upper) - norm_cdf(lower)`` in fewer array passes."""
    out: F32 = np.tanh(upper * _TANH_SCALE, dtype=np.float32)
    out -= np.tanh(lower * _TANH_SCALE, dtype=np.float32)
    out *= np.float32(0.5)
    return out


def _strip(d: F32, radius: F32, inv_sigma: F32) -> F32:
    """Fraction of a Gaussian (1 / inv_sigma wide) at offset d that a strip |x| < radius
    covers."""
    return _cdf_diff((d + radius) * inv_sigma, (d - radius) * inv_sigma)


def _half_chord(d: F32, radius: F32, scale: float) -> F32:
    """Half the vertical chord through the inclined cylinder, times ``scale``."""
    inside = radius * radius
    inside -= d * d
    np.maximum(inside, np.float32(0), out=inside)
    out: F32 = np.sqrt(inside) * np.float32(scale)
    return out


def pipette_terms(
    pose: PipettePose,
    x_um: F32,
    y_um: F32,
    tau_s: F32,
    focus_um: float,
    optics: Optics,
    sharp: bool = True,
) -> PipetteTerms:
    """Exclusion, shadow and emission of one pipette on a grid of sample points.

    ``x_um`` (1, w) or (h, w), ``y_um`` (h, 1) or (h, w) are sample positions; ``tau_s``
    (h, w) the scan time of each point relative to the frame's mid-time. ``sharp=False``
    skips what only matters near focus (exclusion, speck) for a coarse pass far from it.
    """
    geo, dx, dy = _geometry(pose, x_um, y_um, tau_s, focus_um)
    sxy2 = np.float32(optics.psf_sigma_xy_um**2)
    sz = optics.psf_sigma_z_um
    to_z = 1 / (math.cos(math.radians(pose.pitch_deg)) * sz)  # chord µm -> axial sigmas

    # Lateral sigma of the excitation beam where it meets the glass, and its inverse.
    beam = geo.h * np.float32(optics.defocus_slope)
    beam *= beam
    beam += sxy2
    inv_beam = 1 / np.sqrt(beam)
    end_cap = norm_cdf(geo.s_h * inv_beam)  # the cone ends at the tip
    h_z = geo.h * np.float32(1 / sz)
    half_z = _half_chord(geo.d, geo.r_out, to_z)
    low_z = h_z - half_z
    # Glass entirely above the focal volume shades the excitation cone.
    blocked = norm_cdf(low_z - np.float32(1.5))
    blocked *= _strip(geo.d, geo.r_out, inv_beam)
    blocked *= end_cap
    blocked *= np.float32(pose.shadow_strength)
    shadow = 1 - blocked
    shadow *= shadow  # two-photon excitation goes with the square of the light

    if sharp:  # the glass replaces the dye over the part of the axial PSF it fills
        exclusion = _cdf_diff(h_z + half_z, low_z)
        exclusion *= end_cap
        np.subtract(np.float32(1), exclusion, out=exclusion)
    else:
        exclusion = np.ones_like(shadow)
    emission = np.zeros_like(shadow)
    mix = pose.lumen_mix
    if mix > 0 and pose.lumen_brightness > 0:
        near = np.exp(-(h_z * h_z) / np.float32(8.0))  # within ~2 axial sigmas
        fade = np.exp(-np.abs(geo.h) / np.float32(optics.axial_fade_um)) * (1 - near)
        lumen = _strip(geo.d, geo.r_in, inv_beam) * fade
        if sharp:
            half_in = _half_chord(geo.d, geo.r_in, to_z)
            lumen += _cdf_diff(h_z + half_in, h_z - half_in)
        emission += np.float32(pose.lumen_brightness * mix) * lumen * end_cap
    if sharp and pose.tip_speck > 0:
        radius = pose.tip_diameter_um / 2
        tip_dz = pose.tip_um[2] - focus_um
        axial = math.exp(-(tip_dz**2) / (2 * (sz**2 + radius**2)))
        if axial > 1e-3:
            spread = np.float32(2 * (optics.psf_sigma_xy_um**2 + radius**2 / 2))
            emission += np.float32(pose.tip_speck * axial) * np.exp(-(dx * dx + dy * dy) / spread)
    return PipetteTerms(exclusion=exclusion, shadow=shadow, emission=emission)


def sharp_band(
    pose: PipettePose,
    view: View,
    optics: Optics,
    coarse_um: float,
    max_shift_um: float,
) -> tuple[slice, slice] | None:
    """Rows and columns where the pipette has detail finer than ``coarse_um``: near the focus
    crossing, where the beam at the glass is narrower than two coarse steps."""
    slope = optics.defocus_slope
    tan_pitch = math.tan(math.radians(pose.pitch_deg))
    cos_pitch = math.cos(math.radians(pose.pitch_deg))
    taper = math.tan(math.radians(pose.taper_half_angle_deg))
    h_tip = pose.tip_um[2] - view.focus_um
    height = math.sqrt(max((2 * coarse_um) ** 2 - optics.psf_sigma_xy_um**2, 0.0)) / slope
    height += 4 * optics.psf_sigma_z_um + pose.tip_diameter_um + max_shift_um
    # A wide shank crossing focus fills the axial PSF over half its vertical chord more.
    s_far = max(0.0, -h_tip / tan_pitch) + height / tan_pitch
    along_far = s_far / cos_pitch
    height += (pose.tip_diameter_um / 2 + along_far * (taper + _SHOULDER * along_far)) / cos_pitch
    margin = 3 * coarse_um + 3 * pose.tip_diameter_um + max_shift_um
    fov = max(view.width_px, view.height_px) * view.pixel_size_um
    s_low = max(-margin, (-height - h_tip) / tan_pitch)
    s_high = min((height - h_tip) / tan_pitch, 2 * fov + 1000.0)
    if s_high < s_low:
        return None
    along = max(s_high, 0.0) / cos_pitch
    half_width = pose.tip_diameter_um / 2 + along * (taper + _SHOULDER * along) + 8 * coarse_um
    half_width += max_shift_um
    yaw = math.radians(pose.yaw_deg)
    ux, uy = math.cos(yaw), math.sin(yaw)
    corners_x, corners_y = [], []
    for s in (s_low, s_high):
        for d in (-half_width, half_width):
            x_um = pose.tip_um[0] - s * ux - d * uy
            y_um = pose.tip_um[1] - s * uy + d * ux
            x_px, y_px = view.sample_to_pixel(x_um, y_um)
            corners_x.append(x_px)
            corners_y.append(y_px)
    c0 = max(0, math.floor(min(corners_x)))
    c1 = min(view.width_px, math.ceil(max(corners_x)) + 1)
    r0 = max(0, math.floor(min(corners_y)))
    r1 = min(view.height_px, math.ceil(max(corners_y)) + 1)
    if c0 >= c1 or r0 >= r1:
        return None
    return slice(r0, r1), slice(c0, c1)


def pipette_box(
    pose: PipettePose,
    x_um: NDArray[np.float64],
    y_um: NDArray[np.float64],
    focus_um: float,
    optics: Optics,
    max_shift_um: float,
) -> tuple[slice, slice] | None:
    """Rows and columns of the frame where the pipette's terms differ from 1 (or 0).

    Checks a coarse lattice of the frame (every 8th pixel plus the edges), then pads.
    """
    step = 8
    cols = np.unique(np.r_[np.arange(0, x_um.size, step), x_um.size - 1])
    rows = np.unique(np.r_[np.arange(0, y_um.size, step), y_um.size - 1])
    xs = x_um[cols].astype(np.float32)[None, :]
    ys = y_um[rows].astype(np.float32)[:, None]
    zero = np.zeros((rows.size, cols.size), dtype=np.float32)
    geo, dx, dy = _geometry(pose, xs, ys, zero, focus_um)
    beam = np.sqrt(optics.psf_sigma_xy_um**2 + (optics.defocus_slope * geo.h) ** 2)
    pixel = float(abs(x_um[1] - x_um[0])) if x_um.size > 1 else 1.0
    margin = max_shift_um + step * pixel * 1.5 + 2 * pose.tip_diameter_um
    reach = geo.r_out + 4 * beam + margin
    hit = (np.abs(geo.d) < reach) & (geo.s_h > -(4 * beam + margin))
    if pose.tip_speck > 0:
        hit |= dx * dx + dy * dy < (margin + 3) ** 2
    if not hit.any():
        return None
    r_idx = np.flatnonzero(hit.any(axis=1))
    c_idx = np.flatnonzero(hit.any(axis=0))
    r0 = max(0, int(rows[r_idx[0]]) - step)
    r1 = min(y_um.size, int(rows[r_idx[-1]]) + step + 1)
    c0 = max(0, int(cols[c_idx[0]]) - step)
    c1 = min(x_um.size, int(cols[c_idx[-1]]) + step + 1)
    return slice(r0, r1), slice(c0, c1)


def plume_terms(
    pose: PipettePose, x_um: NDArray[np.float64], y_um: NDArray[np.float64], focus_um: float
) -> tuple[slice, slice, F32] | None:
    """Dye ejected at the tip: a 3D Gaussian cloud just ahead of the tip, cut at focus.

    Returns the rows, columns and added fluorescence, or None when it is negligible here.
    """
    if pose.plume_strength <= 0:
        return None
    sigma = pose.plume_sigma_um
    centre = np.asarray(pose.tip_um) + pose.axis * (0.5 * sigma)
    axial = pose.plume_strength * math.exp(-((centre[2] - focus_um) ** 2) / (2 * sigma**2))
    if axial < 1e-3:
        return None
    reach = sigma * math.sqrt(2 * math.log(axial / 1e-3))
    cols = np.flatnonzero(np.abs(x_um - centre[0]) < reach)
    rows = np.flatnonzero(np.abs(y_um - centre[1]) < reach)
    if cols.size == 0 or rows.size == 0:
        return None
    gx = np.exp(-((x_um[cols] - centre[0]) ** 2) / (2 * sigma**2)).astype(np.float32)
    gy = np.exp(-((y_um[rows] - centre[1]) ** 2) / (2 * sigma**2)).astype(np.float32)
    cloud = np.float32(axial) * gy[:, None] * gx[None, :]
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1), cloud


def silhouette(pose: PipettePose, x_um: F32, y_um: F32, edge_um: float) -> tuple[F32, F32]:
    """Sharp projected outline of the whole pipette (outer, lumen) for the clean domain."""
    zero = np.zeros(np.broadcast_shapes(x_um.shape, y_um.shape), dtype=np.float32)
    geo, _, _ = _geometry(pose, x_um, y_um, zero, pose.tip_um[2])
    edge = np.float32(edge_um)
    cap = norm_cdf(geo.s_h / edge)
    outer = norm_cdf((geo.r_out - np.abs(geo.d)) / edge) * cap
    inner = norm_cdf((geo.r_in - np.abs(geo.d)) / edge) * cap
    return outer, inner
