"""Render a scene as a raster-scanning two-photon microscope would record it.

Image formation, per pixel (row i, column j), sampled at its own scan time ``t_ij``:

1. background fluorescence of the focal plane (medium, tissue texture, nuclei, vessels),
   displaced by tissue motion at ``t_ij``, plus dye plumes at the tips;
2. each pipette excludes that dye where its glass fills the axial PSF, shades the excitation
   cone from above focus, and adds the glow of its dye-filled lumen
   (see :mod:`patchpilot.scene._pipette`);
3. uneven illumination (vignetting, tilt) and attenuation with depth below the surface;
4. the lateral PSF (plus the beam's sweep across a pixel during its dwell);
5. expected photons -> Poisson counts -> PMT gain with excess noise, read noise, offset,
   saturation (see :mod:`patchpilot.scene._detector`).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from patchpilot.scene._detector import detect
from patchpilot.scene._layers import COARSEST_STEP_UM, pipette_layers
from patchpilot.scene._numerics import blur_small, sample_shifted_rows
from patchpilot.scene._pipette import plume_terms, silhouette
from patchpilot.scene.model import Acquisition, Scene, SceneError, TipTruth, View

__all__ = [
    "CLEAN_BACKGROUND_PHOTONS",
    "render",
    "render_clean",
    "render_mean",
    "scan_times",
    "tip_truth",
]

F32 = NDArray[np.float32]

CLEAN_BACKGROUND_PHOTONS = 400.0
"""Expected photons per background pixel in the clean (ex vivo) domain: high signal (fewer if
the digitiser would saturate: the background is kept at 60 % of its range at most)."""


@lru_cache(maxsize=32)
def _scan_times_cached(
    height: int, width: int, dwell_us: float, retrace_ms: float, bidirectional: bool
) -> F32:
    dwell = dwell_us * 1e-6
    line = width * dwell + retrace_ms * 1e-3
    cols = (np.arange(width) + 0.5) * dwell
    times = np.arange(height)[:, None] * line + np.broadcast_to(cols, (height, width))
    if bidirectional:
        times[1::2] = np.arange(1, height, 2)[:, None] * line + cols[::-1]
    times = times - 0.5 * (times.min() + times.max())
    out: F32 = times.astype(np.float32)
    out.setflags(write=False)
    return out


def scan_times(view: View, acquisition: Acquisition) -> F32:
    """Scan time of every pixel relative to the frame's mid-time (s), shape (rows, cols).

    Rows are scanned one after another (line time = width * dwell + retrace); within a row
    the beam moves left to right (alternating with ``bidirectional``).
    """
    return _scan_times_cached(
        view.height_px,
        view.width_px,
        acquisition.pixel_dwell_us,
        acquisition.line_retrace_ms,
        acquisition.bidirectional,
    )


_COARSE_STEP_UM = COARSEST_STEP_UM


@lru_cache(maxsize=32)
def _illumination(height: int, width: int, vignetting: float, tilt: tuple[float, float]) -> F32:
    xn = np.linspace(-1.0, 1.0, width)[None, :]
    yn = np.linspace(-1.0, 1.0, height)[:, None]
    field = (1 - vignetting * (xn**2 + yn**2) / 2) * (1 + tilt[0] * xn + tilt[1] * yn)
    out = np.maximum(field, 0.02).astype(np.float32)
    out.setflags(write=False)
    return out


def tip_truth(scene: Scene) -> list[TipTruth]:
    """Where every pipette's tip is in the frame, at the frame's mid-time."""
    view = scene.view
    truths = []
    for pose in scene.pipettes:
        x_um, y_um, z_um = pose.tip_um
        x_px, y_px = view.sample_to_pixel(x_um, y_um)
        z_offset = z_um - view.focus_um
        truths.append(
            TipTruth(
                pipette_id=pose.pipette_id,
                x_px=float(x_px),
                y_px=float(y_px),
                x_um=float(x_um),
                y_um=float(y_um),
                z_offset_um=float(z_offset),
                in_frame=bool(
                    -0.5 <= x_px <= view.width_px - 0.5 and -0.5 <= y_px <= view.height_px - 0.5
                ),
                in_focus=bool(abs(z_offset) <= scene.optics.depth_of_field_um / 2),
            )
        )
    return truths


def _background(scene: Scene, tau: F32) -> F32:
    """Focal-plane fluorescence sampled per row at the tissue's displaced position."""
    view = scene.view
    px = view.pixel_size_um
    motion = scene.tissue_motion
    x0, y0 = view.pixel_to_sample_um(0.0, 0.0)
    if motion.is_still:
        shift = np.zeros((view.height_px, 3))
        dz = 0.0
    else:
        row_times = scene.time_s + tau[:, view.width_px // 2].astype(np.float64)
        shift = motion.displacement(row_times)
        dz = float(motion.displacement(scene.time_s)[2])
    reach = motion.heart_amplitude_um + motion.breath_amplitude_um
    margin = math.ceil(reach / px) + 2
    col_origin = math.floor(x0 / px) - margin
    row_origin = math.floor(y0 / px) - margin
    shape = (view.height_px + 2 * margin + 2, view.width_px + 2 * margin + 2)
    # The tissue moved by `shift`, so a pixel sees the tissue point `position - shift`.
    slab = scene.tissue.slab(
        view.focus_um - dz, px, (row_origin, col_origin), shape, scene.optics.psf_sigma_z_um
    )
    rows = (y0 + view.pixel_size_um * np.arange(view.height_px) - shift[:, 1]) / px - row_origin
    cols = (x0 - shift[:, 0]) / px - col_origin
    return sample_shifted_rows(slab, rows, cols, view.width_px)


def _fluorescence(scene: Scene) -> F32:
    view = scene.view
    optics = scene.optics
    tau = scan_times(view, scene.acquisition)
    x_um = view.column_x_um()
    y_um = view.row_y_um()
    background = _background(scene, tau)
    shadow = np.ones_like(background)
    emission = np.zeros_like(background)
    half_frame_s = 0.5 * scene.frame_time_s()
    for pose in scene.pipettes:
        plume = plume_terms(pose, x_um, y_um, view.focus_um)
        if plume is not None:
            rows, cols, cloud = plume
            background[rows, cols] += cloud
    for pose in scene.pipettes:
        speed = math.hypot(*pose.velocity_um_s[:2]) + abs(pose.velocity_um_s[2])
        layers = pipette_layers(pose, view, optics, tau, speed * half_frame_s, _COARSE_STEP_UM)
        if layers is None:
            continue
        shadow[layers.box] *= layers.shadow
        if layers.emission is not None:
            emission[layers.box] += layers.emission
        if layers.band is not None and layers.exclusion is not None:
            background[layers.band] *= layers.exclusion
    depth = max(0.0, scene.tissue.surface_z_um - view.focus_um)
    scale = math.exp(-depth / optics.attenuation_length_um)
    illumination = _illumination(
        view.height_px, view.width_px, optics.vignetting, optics.illumination_tilt
    )
    fluorescence = (background + emission) * shadow * (illumination * np.float32(scale))
    sigma_x = math.sqrt(optics.psf_sigma_xy_um**2 + view.pixel_size_um**2 / 12) / view.pixel_size_um
    sigma_y = optics.psf_sigma_xy_um / view.pixel_size_um
    return blur_small(fluorescence, sigma_x, sigma_y)


def _clean_fluorescence(scene: Scene) -> F32:
    """The ex vivo look: flat grey, slight tilt, sharp dark silhouettes with a paler lumen."""
    view = scene.view
    x_um = view.column_x_um().astype(np.float32)[None, :]
    y_um = view.row_y_um().astype(np.float32)[:, None]
    xn = np.linspace(-1.0, 1.0, view.width_px, dtype=np.float32)[None, :]
    image = np.ones(view.shape, dtype=np.float32) * (1 + np.float32(0.05) * xn)
    edge = max(0.5 * view.pixel_size_um, scene.optics.psf_sigma_xy_um)
    for pose in scene.pipettes:
        outer, inner = silhouette(pose, x_um, y_um, edge)
        image *= 1 - np.float32(0.9) * outer + np.float32(0.15) * inner
    return image


def render_mean(scene: Scene) -> tuple[F32, list[TipTruth]]:
    """Expected photons per pixel (no noise) and the tips' truth.

    Raises
    ------
    SceneError
        ``scene`` is not a Scene.
    """
    if not isinstance(scene, Scene):
        raise SceneError(f"render needs a Scene, got {type(scene).__name__}")
    if scene.clean_domain:
        acq = scene.acquisition
        headroom = 0.6 * (acq.max_adu - acq.offset_adu) / acq.detector_gain_adu
        level = max(1.0, min(CLEAN_BACKGROUND_PHOTONS, headroom))
        photons = _clean_fluorescence(scene) * np.float32(level)
    else:
        photons = _fluorescence(scene) * np.float32(scene.acquisition.photons_per_unit())
    return photons, tip_truth(scene)


def render(scene: Scene, rng: np.random.Generator) -> tuple[NDArray[np.uint16], list[TipTruth]]:
    """One frame as the digitiser records it, and where the tips truly are.

    Deterministic for a given ``rng`` state: the tissue is fixed by the scene; only shot,
    excess and read noise are drawn from ``rng``. Each pixel is sampled at its own scan
    time, so pipettes moving with ``velocity_um_s`` and tissue motion shear and blur the
    image row by row; the truth is the tip position at the frame's mid-time
    (``PipettePose.tip_um``).

    Parameters
    ----------
    scene
        What to render.
    rng
        Noise source, e.g. ``np.random.default_rng(seed)``.

    Returns
    -------
    image
        uint16 (rows, cols) in digitiser units (ADU), saturating at ``2**bit_depth - 1``.
    truth
        One :class:`TipTruth` per pipette, in ``scene.pipettes`` order, also for tips
        outside the frame (``in_frame`` False).

    Raises
    ------
    SceneError
        ``scene`` is not a Scene or ``rng`` is not a numpy Generator.
    """
    if not isinstance(rng, np.random.Generator):
        raise SceneError(f"render needs a numpy Generator as rng, got {type(rng).__name__}")
    photons, truth = render_mean(scene)
    return detect(photons, scene.acquisition, rng), truth


def render_clean(
    scene: Scene, rng: np.random.Generator
) -> tuple[NDArray[np.uint16], list[TipTruth]]:
    """The same pipettes in the paper's clean (ex vivo) domain: plain grey background, high
    signal, sharp dark silhouettes (for training the CycleGAN)."""
    return render(scene.replace(clean_domain=True), rng)
