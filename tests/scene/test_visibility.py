"""Tip visibility: the matched-filter SNR that says which tips anyone could find."""

from __future__ import annotations

from patchpilot.scene import Acquisition, Optics, PipettePose, Scene, Tissue, TissueMotion, View
from patchpilot.scene.visibility import tip_visibility


def _scene(tip_um: tuple[float, float, float], photons_per_us: float) -> Scene:
    return Scene(
        tissue=Tissue.uniform(),
        pipettes=(PipettePose("A", tip_um, 30.0, 0.0),),
        view=View((0.0, 0.0), 0.0, 96, 96, 1.0),
        optics=Optics(),
        acquisition=Acquisition(photon_rate_per_us=photons_per_us),
        tissue_motion=TissueMotion.still(),
    )


def test_visibility_grows_with_the_square_root_of_the_photons() -> None:
    dim = tip_visibility(_scene((0.0, 0.0, 0.0), 1.0))[0]
    bright = tip_visibility(_scene((0.0, 0.0, 0.0), 100.0))[0]
    assert dim > 0
    assert 8.0 < bright / dim < 12.0  # sqrt(100) = 10


def test_out_of_focus_tip_is_less_visible_and_outside_frame_is_zero() -> None:
    in_focus = tip_visibility(_scene((0.0, 0.0, 0.0), 20.0))[0]
    below = tip_visibility(_scene((0.0, 0.0, -25.0), 20.0))[0]
    outside = tip_visibility(_scene((200.0, 0.0, 0.0), 20.0))[0]
    assert below < in_focus
    assert outside == 0.0
