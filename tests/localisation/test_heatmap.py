"""Gaussian heatmap targets and the paper's heatmap head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from patchpilot.localisation.heatmap import gaussian_heatmap, gaussian_heatmap_torch
from patchpilot.localisation.models.coarse_fine import HeatmapHead


def test_peak_sits_at_the_tip() -> None:
    heat = gaussian_heatmap([(12.0, 30.0), (50.0, 7.0)], (64, 64), sigma_px=3.0)
    assert heat[30, 12] == pytest.approx(1.0)
    assert heat[7, 50] == pytest.approx(1.0)
    # exp(-d^2/sigma^2): at distance sigma the value is 1/e.
    assert heat[30, 15] == pytest.approx(np.exp(-1.0), rel=1e-5)
    assert heat[0, 0] < 1e-6


def test_sigma_controls_width() -> None:
    narrow = gaussian_heatmap([(32.0, 32.0)], (64, 64), sigma_px=2.0)
    wide = gaussian_heatmap([(32.0, 32.0)], (64, 64), sigma_px=10.0)
    assert wide.sum() > 20 * narrow.sum()
    assert (narrow > 0.5).sum() < (wide > 0.5).sum()


def test_strided_map_samples_cell_centres() -> None:
    # Cell (row 2, col 3) of a stride-4 map covers pixels 12..15 x 8..11, centre (13.5, 9.5).
    heat = gaussian_heatmap([(13.5, 9.5)], (16, 16), sigma_px=4.0, stride=4)
    assert np.unravel_index(heat.argmax(), heat.shape) == (2, 3)
    assert heat[2, 3] == pytest.approx(1.0)


def test_empty_and_invalid() -> None:
    assert gaussian_heatmap(np.zeros((0, 2)), (8, 8), 2.0).max() == 0.0
    with pytest.raises(ValueError, match="sigma"):
        gaussian_heatmap([(1.0, 1.0)], (8, 8), 0.0)


def test_torch_version_matches_numpy() -> None:
    tips = torch.tensor([[[5.0, 6.0], [20.0, 3.0], [0.0, 0.0]]])
    valid = torch.tensor([[True, True, False]])
    heat = gaussian_heatmap_torch(tips, valid, (16, 32), 3.0, stride=1)
    expected = gaussian_heatmap([(5.0, 6.0), (20.0, 3.0)], (16, 32), 3.0)
    np.testing.assert_allclose(heat[0, 0].numpy(), expected, atol=1e-6)


def test_head_1x1_before_upsampling_equals_paper_order() -> None:
    torch.manual_seed(0)
    reordered = HeatmapHead(24, hidden=16, upsample=16, conv1x1_first=True)
    paper = HeatmapHead(24, hidden=16, upsample=16, conv1x1_first=False)
    paper.load_state_dict(reordered.state_dict())
    features = torch.randn(2, 24, 4, 5)
    fast, slow = reordered(features), paper(features)
    assert fast.shape == (2, 1, 64, 80)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
