"""Checkpoint round trip, and clear errors for corrupt or mismatched checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from patchpilot.localisation import LocaliserError, create_localiser
from patchpilot.localisation.checkpoint import load_checkpoint, load_model, save_checkpoint
from patchpilot.localisation.inference import Localiser


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    model = create_localiser("tiny")
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, model, epoch=3, provenance={"train_seeds": [0, 100]})
    return path


def test_round_trip_restores_weights_and_metadata(saved: Path) -> None:
    model, data = load_model(saved)
    original = torch.load(saved, weights_only=True)["model_state"]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, original[key])
    assert data["epoch"] == 3
    assert data["provenance"] == {"train_seeds": [0, 100]}
    assert data["pixel_size_um"] == model.preset.pixel_size_um == 2.0
    assert data["preset_name"] == "tiny" and data["input_size_px"] == 64


def test_wrong_preset_is_refused(saved: Path) -> None:
    with pytest.raises(LocaliserError, match="trained with preset 'tiny', expected 'fast'"):
        load_model(saved, expected_preset="fast")
    with pytest.raises(LocaliserError, match="expected 'paper'"):
        Localiser.from_checkpoint(saved, preset="paper")


def test_truncated_file(saved: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(saved.read_bytes()[:5000])
    with pytest.raises(LocaliserError, match=r"broken.pt: cannot be read \(corrupt or truncated"):
        load_model(broken)


def test_not_a_checkpoint(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a zip file at all")
    with pytest.raises(LocaliserError, match="cannot be read"):
        load_checkpoint(garbage)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(LocaliserError, match="not a patchpilot localiser checkpoint"):
        load_checkpoint(other)
    with pytest.raises(LocaliserError, match="file not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_weights_not_fitting_the_preset(saved: Path, tmp_path: Path) -> None:
    data = torch.load(saved, weights_only=True)
    state = data["model_state"]
    renamed = dict(state)
    key = next(iter(renamed))
    renamed["bogus.weight"] = renamed.pop(key)
    torch.save({**data, "model_state": renamed}, tmp_path / "keys.pt")
    with pytest.raises(LocaliserError, match=rf"missing {key}.*unexpected bogus.weight"):
        load_model(tmp_path / "keys.pt")
    reshaped = dict(state)
    reshaped[key] = torch.zeros(3)
    torch.save({**data, "model_state": reshaped}, tmp_path / "shape.pt")
    with pytest.raises(LocaliserError, match=f"shape mismatch in {key}"):
        load_model(tmp_path / "shape.pt")
    torch.save({**data, "pixel_size_um": 0.5}, tmp_path / "pixel.pt")
    with pytest.raises(LocaliserError, match="pixel size"):
        load_model(tmp_path / "pixel.pt")
