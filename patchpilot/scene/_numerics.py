"""Small vectorised helpers the renderer leans on: a fast normal CDF, a small separable blur,
bilinear sampling with a per-row shift, and a bank of periodic noise textures.

All work on float32 arrays; nothing here loops over pixels in Python.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["blur_small", "norm_cdf", "sample_periodic", "sample_shifted_rows", "texture_bank"]

F32 = NDArray[np.float32]


def norm_cdf(x: NDArray[np.floating[Any]]) -> F32:
    """Standard normal CDF by the logistic approximation ``1 / (1 + exp(-1.702 x))``.

    Absolute error below 0.01 (the PSF is not exactly Gaussian either), three array passes
    instead of erf's cost.
    """
    out: F32 = np.tanh(x * np.float32(0.851), dtype=np.float32)
    out *= np.float32(0.5)
    out += np.float32(0.5)
    return out


def _kernel(sigma_px: float) -> F32:
    radius = max(1, round(2.5 * sigma_px))  # taps beyond carry < 1 % of the weight
    taps = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (taps / max(sigma_px, 1e-6)) ** 2)
    kernel: F32 = (weights / weights.sum()).astype(np.float32)
    return kernel


def _blur_axis(image: F32, kernel: F32, axis: int) -> F32:
    """Symmetric 1D correlation along ``axis``, edges extended (nearest)."""
    radius = len(kernel) // 2
    data = image if axis == 0 else image.T
    out = data * kernel[radius]
    size = data.shape[0]
    for tap in range(1, min(radius, size - 1) + 1):
        weight = kernel[radius + tap]
        out[tap:] += weight * data[:-tap]
        out[:-tap] += weight * data[tap:]
        out[:tap] += weight * data[0]
        out[-tap:] += weight * data[-1]
    result: F32 = out if axis == 0 else np.ascontiguousarray(out.T)
    return result


def blur_small(image: F32, sigma_x_px: float, sigma_y_px: float) -> F32:
    """Separable Gaussian blur for the small sigmas of a PSF (a few pixels at most).

    Sigmas below 0.15 px leave that axis untouched (the kernel would be a delta).
    """
    out = image
    if sigma_y_px >= 0.15:
        out = _blur_axis(out, _kernel(sigma_y_px), 0)
    if sigma_x_px >= 0.15:
        out = _blur_axis(out, _kernel(sigma_x_px), 1)
    return out


def sample_shifted_rows(
    slab: F32, row_pos: NDArray[np.float64], col_pos: NDArray[np.float64], width: int
) -> F32:
    """Bilinear samples ``slab[row_pos[i], col_pos[i] + j]`` for j < ``width``.

    Each image row reads the slab along one row at a fractional offset, which is how tissue
    motion during the scan shears the image. Positions are clipped to the slab. Rows are
    blended first (whole slab rows), then shifted in groups that share an integer offset:
    motion within one frame spans only a few pixels, so there are few groups.
    """
    rows, cols = slab.shape
    r = np.clip(row_pos, 0.0, rows - 1.001)
    c = np.clip(col_pos, 0.0, cols - width - 1.001)
    r0 = r.astype(np.int64)
    c0 = c.astype(np.int64)
    fr = (r - r0).astype(np.float32)[:, None]
    fc = (c - c0).astype(np.float32)[:, None]
    upper = slab[r0]
    blended = upper + (slab[r0 + 1] - upper) * fr
    out = np.empty((row_pos.size, width), dtype=np.float32)
    for offset in np.unique(c0):
        members = np.flatnonzero(c0 == offset)
        left = blended[members, offset : offset + width]
        right = blended[members, offset + 1 : offset + 1 + width]
        out[members] = left + (right - left) * fc[members]
    return out


_BANK_SIZE = 512
_BANK_SEED = 20250401
_bank: dict[str, F32] = {}
_bank_lock = threading.Lock()

# name -> Gaussian correlation length (µm) of the filtered white noise.
_BANK_SCALES = {
    "grain_a": 0.9,
    "grain_b": 0.9,
    "blotch_a": 4.0,
    "blotch_b": 4.0,
    "haze": 35.0,
}


def texture_bank() -> dict[str, F32]:
    """Periodic (512 µm, 1 µm texels) zero-mean unit-variance noise fields, made once per
    process from a fixed seed, so every tissue is reproducible from its own parameters.
    Each is stored as 512 rows x 1536 columns (three periods side by side)."""
    with _bank_lock:
        if not _bank:
            rng = np.random.default_rng(_BANK_SEED)
            freq = np.fft.fftfreq(_BANK_SIZE)
            rfreq = np.fft.rfftfreq(_BANK_SIZE)
            k2 = (2 * np.pi) ** 2 * (freq[:, None] ** 2 + rfreq[None, :] ** 2)
            for name, scale_um in _BANK_SCALES.items():
                white = rng.standard_normal((_BANK_SIZE, _BANK_SIZE))
                spectrum = np.fft.rfft2(white) * np.exp(-0.5 * k2 * scale_um**2)
                field = np.fft.irfft2(spectrum, s=(_BANK_SIZE, _BANK_SIZE))
                field = (field - field.mean()) / field.std()
                # Three periods wide: any window of up to two periods is one slice.
                _bank[name] = np.ascontiguousarray(np.tile(field.astype(np.float32), (1, 3)))
        return _bank


def sample_periodic(
    fields: Sequence[tuple[F32, float]], x_um: NDArray[np.float64], y_um: NDArray[np.float64]
) -> F32:
    """Bilinear samples of a weighted sum of periodic 1-µm textures on the grid
    ``y_um`` x ``x_um`` (``x_um`` increasing). Textures from :func:`texture_bank` are stored
    three periods wide, so the needed columns are one slice; rows are gathered, blended and
    summed on that slice, then the columns are interpolated once."""
    period = fields[0][0].shape[0]
    fy = np.mod(y_um, period)
    r0 = fy.astype(np.int64)
    r1 = (r0 + 1) % period
    wy = (fy - r0).astype(np.float32)[:, None]
    start = math.floor(x_um[0] / period) * period
    local = x_um - start  # >= 0
    c0 = local.astype(np.int64)
    wx = (local - c0).astype(np.float32)[None, :]
    first, last = int(c0[0]), int(c0[-1]) + 2
    wide = all(texture.shape[1] >= last for texture, _ in fields)
    if not wide:  # a very wide view: read column by column, modulo the period
        cols = np.arange(first, last) % period
    rows = np.zeros((y_um.size, last - first), dtype=np.float32)
    for texture, weight in fields:
        source = texture[:, first:last] if wide else texture[:, cols]
        upper = source[r0]
        rows += np.float32(weight) * (upper + (source[r1] - upper) * wy)
    index = c0 - first
    left = rows[:, index]
    out: F32 = left + (rows[:, index + 1] - left) * wx
    return out
