"""Small, controlled scenes for the renderer's tests."""

from __future__ import annotations

from typing import Any

import pytest

from patchpilot.scene import Acquisition, Optics, PipettePose, Scene, Tissue, TissueMotion, View


def plain_scene(*pipettes: PipettePose, **changes: Any) -> Scene:
    """A flat field, no vignetting, no tissue motion, a 96x96 frame at 1 µm/pixel."""
    fields: dict[str, Any] = {
        "tissue": Tissue.uniform(1.0),
        "pipettes": tuple(pipettes),
        "view": View((0.0, 0.0), 0.0, 96, 96, 1.0),
        "optics": Optics(vignetting=0.0),
        "acquisition": Acquisition(),
        "tissue_motion": TissueMotion.still(),
    }
    fields.update(changes)
    return Scene(**fields)


@pytest.fixture
def unit_gain() -> Acquisition:
    """Photon counting at unit gain: no excess noise, offset or read noise, 16 bits."""
    return Acquisition(
        detector_gain_adu=1.0,
        excess_noise_factor=1.0,
        offset_adu=0.0,
        read_noise_adu=0.0,
        bit_depth=16,
    )
