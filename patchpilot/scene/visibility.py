"""How visible each tip is: the signal-to-noise a matched filter would have at the tip.

A tip is findable only if the pipette changes the image near its tip by more than the noise.
``tip_visibility`` renders the noise-free frame with and without each pipette and sums the
squared difference over a disc around the tip, weighted by the shot-noise variance (photons
times the detector's excess-noise factor squared)::

    snr = sqrt( sum_disc (with - without)^2 / (with * F^2) )

This is the best any detector could do knowing where to look (an upper bound); a tip below
about 3 is effectively invisible in one frame. Evaluation uses it to separate the tips a
localiser can be asked to find from those no one could see.
"""

from __future__ import annotations

import numpy as np

from patchpilot.scene.model import Scene
from patchpilot.scene.rendering import render_mean

__all__ = ["VISIBLE_SNR", "tip_visibility"]

VISIBLE_SNR = 3.0
"""Matched-filter SNR below which a tip counts as invisible in a single frame."""


def tip_visibility(scene: Scene, radius_um: float = 6.0) -> list[float]:
    """Matched-filter SNR of each pipette's tip (``scene.pipettes`` order; 0 when the tip is
    outside the frame).

    Parameters
    ----------
    scene
        The scene (its noise-free render is used; no randomness).
    radius_um
        Radius of the disc around the tip over which the signal is summed (µm).
    """
    with_all, truth = render_mean(scene)
    height, width = with_all.shape
    variance = np.maximum(with_all, 1e-3) * np.float32(scene.acquisition.excess_noise_factor**2)
    radius_px = radius_um / scene.view.pixel_size_um
    snrs: list[float] = []
    for index, tip in enumerate(truth):
        if not tip.in_frame:
            snrs.append(0.0)
            continue
        others = scene.pipettes[:index] + scene.pipettes[index + 1 :]
        without, _ = render_mean(scene.replace(pipettes=others))
        r = int(np.ceil(radius_px))
        row, col = round(tip.y_px), round(tip.x_px)
        rows = slice(max(0, row - r), min(height, row + r + 1))
        cols = slice(max(0, col - r), min(width, col + r + 1))
        yy, xx = np.mgrid[rows, cols]
        disc = (xx - tip.x_px) ** 2 + (yy - tip.y_px) ** 2 <= radius_px**2
        diff = (with_all[rows, cols] - without[rows, cols])[disc]
        snrs.append(
            float(np.sqrt(np.sum(diff.astype(np.float64) ** 2 / variance[rows, cols][disc])))
        )
    return snrs
