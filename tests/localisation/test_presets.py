"""Registry, factory and output shapes of every preset at a small input size."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from patchpilot.localisation import (
    LocaliserError,
    create_localiser,
    get_preset,
    list_localisers,
    register_localiser,
)
from patchpilot.localisation.presets import preset_from_dict, preset_to_dict


def test_builtin_presets_are_listed() -> None:
    names = list_localisers()
    assert {"paper", "vit_s", "vit_ti", "tiny", "fast"} <= set(names)
    assert list_localisers("vit_*") == ["vit_s", "vit_ti"]


@pytest.mark.parametrize("name", ["paper", "vit_s", "vit_ti", "tiny", "fast"])
def test_shapes_at_small_size(name: str) -> None:
    preset = get_preset(name)
    model = create_localiser(name, input_size_px=64).eval()
    with torch.inference_mode():
        out = model(torch.randn(2, 1, 64, 64))
    k = preset.max_tips
    assert out.tips_px.shape == (2, k, 2)
    assert out.presence_logit.shape == (2, k)
    assert out.heatmap_logit is not None
    assert out.heatmap_logit.shape == (2, 1, 64 // out.heatmap_stride, 64 // out.heatmap_stride)
    assert torch.isfinite(out.tips_px).all()
    # Slots lie on the image (pixel-centre convention: [-0.5, S - 0.5]).
    assert out.tips_px.min() >= -0.5 and out.tips_px.max() <= 63.5


def test_paper_preset_matches_the_paper() -> None:
    paper = get_preset("paper")
    assert paper.backbone == "vit_base_patch16_224" and paper.decoder == "resnet18"
    assert paper.input_size_px == 256 and paper.sigma_px == 10.0 and paper.max_tips == 4
    assert paper.loss.distance_weight == 0.15
    assert [(s.parts, s.lr) for s in paper.stages] == [
        (("coarse",), 1e-4),
        (("fine",), 1e-3),
        (("coarse", "fine"), 1e-4),
    ]
    assert paper.epochs == 200 and paper.plateau_patience == 20


def test_unknown_names_and_fields_are_clear_errors() -> None:
    with pytest.raises(LocaliserError, match=r"unknown localiser preset 'nope'.*fast"):
        create_localiser("nope")
    with pytest.raises(LocaliserError, match=r"unknown preset field.*input_px"):
        create_localiser("tiny", input_px=32)
    with pytest.raises(LocaliserError, match="already registered"):
        register_localiser(get_preset("tiny"))
    with pytest.raises(LocaliserError, match="unknown architecture"):
        register_localiser(dataclasses.replace(get_preset("tiny"), name="x", architecture="y"))


def test_presets_round_trip_through_dicts() -> None:
    for name in list_localisers():
        preset = get_preset(name)
        assert preset_from_dict(preset_to_dict(preset)) == preset
    with pytest.raises(LocaliserError, match="invalid preset"):
        preset_from_dict({"name": "x"})
