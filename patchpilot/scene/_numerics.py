"""Small vectorised helpers the renderer leans on: a fast normal CDF, a small separable blur,
bilinear sampling with a per-row shift, and a bank of periodic noise textures.

All work on float32 arrays; nothing here loops over pixels in Python.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["blur_small", "norm_cdf", "sample_periodic", "sample_shifted_rows", "texture_bank"]

F32 = NDArray[np.float32]

_SQRT_2_OVER_PI = np.float32(np.sqrt(2.0 / np.pi))


def norm_cdf(x: NDArray[np.floating[Any]]) -> F32:
    """Standard normal CDF, tanh approximation (absolute error < 2e-4), ~40x faster than erf."""
    x = np.clip(x, -8.0, 8.0)
    inner = _SQRT_2_OVER_PI * (x + np.float32(0.044715) * x * x * x)
    out: F32 = (np.float32(0.5) + np.float32(0.5) * np.tanh(inner)).astype(np.float32, copy=False)
    return out


def _kernel(sigma_px: float) -> F32:
    radius = max(1, int(np.ceil(2.5 * sigma_px)))
    taps = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (taps / max(sigma_px, 1e-6)) ** 2)
    kernel: F32 = (weights / weights.sum()).astype(np.float32)
    return kernel


def _blur_axis(image: F32, kernel: F32, axis: int) -> F32:
    radius = len(kernel) // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (radius, radius)
    padded = np.pad(image, pad, mode="edge")
    size = image.shape[axis]
    out = np.zeros_like(image)
    for tap, weight in enumerate(kernel):
        window = padded[tap : tap + size, :] if axis == 0 else padded[:, tap : tap + size]
        out += weight * window
    return out


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
    motion during the scan shears the image. Positions are clipped to the slab.
    """
    rows, cols = slab.shape
    r = np.clip(row_pos, 0.0, rows - 1.001)
    c = np.clip(col_pos, 0.0, cols - width - 1.001)
    r0 = np.floor(r).astype(np.int64)
    c0 = np.floor(c).astype(np.int64)
    fr = (r - r0).astype(np.float32)[:, None]
    fc = (c - c0).astype(np.float32)[:, None]
    flat = slab.ravel()
    index = (r0 * cols + c0)[:, None] + np.arange(width)[None, :]
    top = flat[index] * (1 - fc) + flat[index + 1] * fc
    bottom = flat[index + cols] * (1 - fc) + flat[index + cols + 1] * fc
    out: F32 = top * (1 - fr) + bottom * fr
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
    process from a fixed seed, so every tissue is reproducible from its own parameters."""
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
                _bank[name] = field.astype(np.float32)
        return _bank


def sample_periodic(texture: F32, x_um: NDArray[np.float64], y_um: NDArray[np.float64]) -> F32:
    """Bilinear samples of a periodic 1-µm texture on the grid ``y_um`` x ``x_um``."""
    period = texture.shape[0]
    fx = np.mod(x_um, period)
    fy = np.mod(y_um, period)
    c0 = np.floor(fx).astype(np.int64)
    r0 = np.floor(fy).astype(np.int64)
    wx = (fx - c0).astype(np.float32)[None, :]
    wy = (fy - r0).astype(np.float32)[:, None]
    c1 = (c0 + 1) % period
    r1 = (r0 + 1) % period
    top = texture[np.ix_(r0, c0)] * (1 - wx) + texture[np.ix_(r0, c1)] * wx
    bottom = texture[np.ix_(r1, c0)] * (1 - wx) + texture[np.ix_(r1, c1)] * wx
    out: F32 = top * (1 - wy) + bottom * wy
    return out
