"""Baselines: direct regressors, the coarse-only readout, and their evaluation path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from patchpilot.localisation import create_localiser, get_preset, list_localisers
from patchpilot.localisation.baselines import coarse_only_from_checkpoint, heatmap_peaks
from patchpilot.localisation.baselines.regression import vgg16_style
from patchpilot.localisation.checkpoint import save_checkpoint
from patchpilot.localisation.evaluation import evaluate
from patchpilot.localisation.inference import Localiser
from patchpilot.localisation.losses import TipTargets, compute_loss
from patchpilot.localisation.models.coarse_fine import CoarseToFine
from patchpilot.localisation.sources import render_split

REGRESSORS = ["regress_resnet18", "regress_resnet50", "regress_vgg16", "regress_vit_ti"]


@pytest.fixture(autouse=True)
def _one_thread():  # type: ignore[no-untyped-def]
    """One torch thread: on a shared, loaded 2-core machine two threads stall each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_baseline_presets_are_registered_with_the_paper_conventions() -> None:
    assert set(REGRESSORS) | {"c2f_vit_ti_128", "c2f_vit_s_128"} <= set(list_localisers())
    for name in REGRESSORS:
        preset = get_preset(name)
        assert preset.architecture == "direct_regression"
        assert preset.max_tips == 4 and preset.pixel_size_um == 1.0
        # One stage on the Hungarian distance and presence terms only (no heatmap).
        assert [set(s.terms) for s in preset.stages] == [{"distance", "presence"}]


@pytest.mark.parametrize("name", REGRESSORS)
def test_regressor_shapes(name: str) -> None:
    model = create_localiser(name, input_size_px=64).eval()
    with torch.inference_mode():
        out = model(torch.randn(3, 1, 64, 64))
    assert out.tips_px.shape == (3, 4, 2)
    assert out.presence_logit.shape == (3, 4)
    assert out.heatmap_logit is None
    assert out.tips_px.min() >= -0.5 and out.tips_px.max() <= 63.5


def test_vgg16_style_has_thirteen_convolutions_and_rejects_bad_widths() -> None:
    net = vgg16_style(12, width=0.25, hidden=32)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) == 13 and len(linears) == 3
    with pytest.raises(ValueError, match="width"):
        vgg16_style(12, width=1.5)


def _blob_batch(n: int, size: int, rng: np.random.Generator) -> tuple[torch.Tensor, TipTargets]:
    """Images with 1-2 bright Gaussian spots; the spots are the tips."""
    images = torch.zeros(n, 1, size, size)
    tips = torch.zeros(n, 16, 2)
    valid = torch.zeros(n, 16, dtype=torch.bool)
    yy, xx = torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)), indexing="ij")
    for b in range(n):
        for k in range(int(rng.integers(1, 3))):
            x, y = rng.uniform(8, size - 8, 2)
            images[b, 0] += torch.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 8.0)
            tips[b, k] = torch.tensor([x, y])
            valid[b, k] = True
    return images, TipTargets(tips, valid)


def test_regressor_loss_decreases_in_a_few_steps() -> None:
    torch.manual_seed(0)
    preset = get_preset("regress_resnet18")
    model = create_localiser(preset, input_size_px=64, backbone="resnet10t").train()
    images, targets = _blob_batch(8, 64, np.random.default_rng(0))
    stage = preset.stages[0]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(25):
        parts = compute_loss(model(images), targets, preset.loss_spec(), stage.terms)
        optimizer.zero_grad()
        parts["total"].backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        losses.append(float(parts["total"].detach()))
    assert set(parts) == {"distance", "presence", "total"}
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:3])


def test_heatmap_peaks_find_sub_pixel_maxima_and_respect_min_distance() -> None:
    yy, xx = np.mgrid[0:48, 0:48].astype(np.float64)
    true = [(12.3, 30.6), (35.8, 10.2)]
    heat = np.zeros((48, 48))
    for x, y in true:
        heat = np.maximum(heat, np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 4.0**2))
    heat[30, 40] = 0.05  # a weak bump, below the paper's 0.1 threshold
    prob = torch.from_numpy(heat).float()[None, None]
    tips, score = heatmap_peaks(prob, k=4, min_distance_px=5)
    strong = tips[0, score[0] > 0.1].numpy()
    assert len(strong) == 2
    for x, y in true:
        assert np.min(np.hypot(strong[:, 0] - x, strong[:, 1] - y)) < 0.35
    # Two maxima 3 px apart: only the stronger is a peak at min_distance 5.
    close = torch.zeros(1, 1, 20, 20)
    close[0, 0, 10, 8], close[0, 0, 10, 11] = 0.9, 0.7
    _, score = heatmap_peaks(close, k=3, min_distance_px=5)
    assert int((score[0] > 0.1).sum()) == 1


def test_coarse_only_reads_the_heatmap_of_a_trained_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    full = create_localiser("tiny")
    assert isinstance(full, CoarseToFine)
    path = save_checkpoint(tmp_path / "c2f.pt", full)
    coarse, _ = coarse_only_from_checkpoint(path, min_distance_px=3)
    assert coarse.preset.name == "tiny_coarse" and coarse.preset.presence_threshold == 0.1
    images = torch.randn(2, 1, 64, 64)
    with torch.inference_mode():
        a, b = full.eval()(images), coarse(images)
    assert a.heatmap_logit is not None and b.heatmap_logit is not None
    assert torch.allclose(a.heatmap_logit, b.heatmap_logit)  # same coarse weights
    # Its slots are the heatmap's strongest peaks.
    tips, score = heatmap_peaks(torch.sigmoid(b.heatmap_logit), 4, 3)
    assert torch.allclose(b.tips_px, tips) and torch.allclose(
        torch.sigmoid(b.presence_logit), score, atol=1e-5
    )
    fast_path = save_checkpoint(tmp_path / "regress.pt", create_localiser("regress_vgg16"))
    with pytest.raises(ValueError, match="no coarse heatmap"):
        coarse_only_from_checkpoint(fast_path)


@pytest.fixture(scope="module")
def tiny_set():  # type: ignore[no-untyped-def]
    return render_split("test", 3, scene_kwargs={"size_px": 80, "pixel_size_um": (1.0, 2.0)})


@pytest.mark.parametrize("kind", ["regress_resnet18", "coarse_only"])
def test_evaluation_runs_for_each_kind(kind: str, tiny_set, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if kind == "coarse_only":
        path = save_checkpoint(tmp_path / "c2f.pt", create_localiser("tiny"))
        model = coarse_only_from_checkpoint(path)[0]
    else:
        model = create_localiser(kind, backbone="resnet10t")
    result = evaluate(Localiser(model, num_threads=1), tiny_set)
    overall = result.overall
    assert overall["n_frames"] == 3
    # Every tip counts, or (when the set marks them) only those that must be found.
    assert 0 < overall["n_true"] <= sum(len(t) for t in tiny_set.tips_px)
    assert result.info["preset"] == model.preset.name
    assert (overall["heatmap_iou"] is None) == (kind != "coarse_only")
