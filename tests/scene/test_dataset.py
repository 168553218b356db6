"""The on-the-fly torch Dataset."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from patchpilot.scene import SceneError, SyntheticTipDataset, normalise_image


def test_items_are_deterministic_normalised_and_padded() -> None:
    data = SyntheticTipDataset("val", length=6, size_px=48, n_pipettes=(2, 3), max_tips=8)
    item = data[2]
    assert item["image"].shape == (1, 48, 48) and item["image"].dtype == torch.float32
    assert float(item["image"].mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(item["image"].std(unbiased=False)) == pytest.approx(1.0, abs=1e-3)
    count = int(item["count"])
    assert item["valid"].sum() == count and not torch.isnan(item["tips_px"][:count]).any()
    assert torch.isnan(item["tips_px"][count:]).all()
    assert int(item["seed"]) == 1_000_002
    again = data[2]
    assert all(torch.equal(item[k], again[k]) for k in ("image", "count", "valid"))
    assert not torch.equal(data[3]["image"], item["image"])
    with pytest.raises(IndexError):
        data[6]
    with pytest.raises(SceneError):
        SyntheticTipDataset("val", length=10**9)


def test_dataloader_with_two_workers_matches_the_main_process() -> None:
    data = SyntheticTipDataset((5000, 5004), size_px=40, pixel_size_um=1.0)
    restored = pickle.loads(pickle.dumps(data))
    loader = DataLoader(restored, batch_size=2, num_workers=2)
    batches = list(loader)
    assert len(batches) == 2 and batches[0]["image"].shape == (2, 1, 40, 40)
    assert torch.equal(batches[1]["image"][0], data[2]["image"])
    assert torch.equal(batches[0]["tips_px"][1], data[1]["tips_px"]) or torch.allclose(
        batches[0]["tips_px"][1], data[1]["tips_px"], equal_nan=True
    )


def test_normalise_image_is_a_per_frame_zscore() -> None:
    image = np.arange(12, dtype=np.uint16).reshape(3, 4) * 100 + 7
    out = normalise_image(image)
    assert out.dtype == np.float32
    assert out.mean() == pytest.approx(0.0, abs=1e-6) and out.std() == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(normalise_image(np.full((3, 3), 5)), np.zeros((3, 3), np.float32))
