"""CycleGAN: networks, losses, crops and paste-back, checkpoints, enhanced localisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from patchpilot.localisation import LocaliserError, create_localiser
from patchpilot.localisation.cyclegan import (
    CropEnhancer,
    DomainFrames,
    EnhancedLocaliser,
    GanConfig,
    PatchDiscriminator,
    ResnetGenerator,
    crop_windows,
    cyclegan_losses,
    enhance_sample_set,
    load_cyclegan,
    paste_back,
    render_clean_split,
    train_cyclegan,
)
from patchpilot.localisation.cyclegan.crops import from_unit_range, to_unit_range
from patchpilot.localisation.cyclegan.training import build_networks
from patchpilot.localisation.evaluation import evaluate
from patchpilot.localisation.inference import Localiser
from patchpilot.localisation.sources import render_split


@pytest.fixture(autouse=True)
def _one_thread():  # type: ignore[no-untyped-def]
    """One torch thread: on a shared, loaded 2-core machine two threads stall each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_generator_and_discriminator_shapes() -> None:
    gen = ResnetGenerator(ngf=8, n_blocks=2)
    disc = PatchDiscriminator(ndf=8, n_layers=2)
    x = torch.rand(3, 1, 64, 64) * 2 - 1
    y = gen(x)
    assert y.shape == x.shape and y.abs().max() <= 1.0
    assert disc(x).shape == (3, 1, 14, 14)  # one logit per overlapping 34 px patch
    assert PatchDiscriminator(ndf=8, n_layers=3)(x).shape == (3, 1, 6, 6)
    with pytest.raises(ValueError, match="multiples of 4"):
        gen(torch.zeros(1, 1, 30, 30))


def test_cycle_loss_decreases_over_a_few_steps() -> None:
    torch.manual_seed(0)
    nets = build_networks({"ngf": 8, "n_blocks": 1, "ndf": 8, "n_layers": 2})
    rng = np.random.default_rng(0)
    # Two unpaired domains: noisy textures with a dark bar, and flat crops with a dark wedge.
    vivo = torch.from_numpy(np.clip(rng.normal(0, 0.4, (4, 1, 32, 32)), -1, 1).astype(np.float32))
    vivo[:, :, 12:20, :16] -= 0.6
    clean = torch.full((4, 1, 32, 32), 0.3)
    clean[:, :, 14:18, 10:] = -0.9
    params = list(nets["G"].parameters()) + list(nets["F"].parameters())
    optimizer = torch.optim.Adam(params, lr=2e-3, betas=(0.5, 0.999))
    cycle = []
    for _ in range(12):
        terms, fake_clean, fake_vivo = cyclegan_losses(nets, vivo, clean, 10.0, 0.5)
        optimizer.zero_grad()
        terms["total"].backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        cycle.append(float(terms["cycle"].detach()))
    assert fake_clean.shape == vivo.shape and fake_vivo.shape == clean.shape
    assert {"adv", "cycle", "identity", "total"} == set(terms)
    assert np.mean(cycle[-3:]) < 0.7 * np.mean(cycle[:2])


def test_crops_paste_back_only_inside_and_map_coordinates() -> None:
    rng = np.random.default_rng(1)
    image = rng.normal(size=(50, 70)).astype(np.float32)
    centres = np.array([[20.4, 25.6], [66.0, 3.0], [24.0, 28.0]])  # 2nd overhangs the edge
    batch = crop_windows(image, centres, 16)
    assert batch.crops.shape == (3, 16, 16)
    x0, y0 = batch.origins_px[0]
    assert (x0, y0) == (12, 18)
    assert np.array_equal(batch.crops[0], image[18:34, 12:28])
    # The centre lies within half a pixel of crop pixel 8 (= 16 // 2), and maps back exactly.
    inside = batch.to_crop_px(centres[:1], 0)[0]
    assert np.allclose(inside, [8.4, 7.6])
    assert np.allclose(batch.to_image_px(batch.to_crop_px(centres, 1), 1), centres)
    # Unchanged crops paste back to the same image; changed ones only where they were.
    assert np.array_equal(paste_back(image, batch), image)
    out = paste_back(image, batch, batch.crops + 10.0)
    covered = np.zeros(image.shape, bool)
    for cx, cy in batch.origins_px:
        covered[max(cy, 0) : cy + 16, max(cx, 0) : cx + 16] = True
    assert np.array_equal(out[~covered], image[~covered])
    assert np.allclose(out[covered], image[covered] + 10.0)  # overlaps average to +10 too
    assert paste_back(image, crop_windows(image, np.zeros((0, 2)), 16)).shape == image.shape
    with pytest.raises(ValueError, match="finite"):
        crop_windows(image, np.array([[np.nan, 1.0]]), 16)
    scaled, mean, std = to_unit_range(batch.crops)
    assert scaled.min() >= -1 and scaled.max() <= 1
    restored = from_unit_range(scaled, mean, std)
    unclipped = np.abs(batch.crops - mean[:, None, None]) < 3 * std[:, None, None]
    assert np.allclose(restored[unclipped], batch.crops[unclipped], atol=1e-5)


@pytest.fixture(scope="module")
def tiny_gan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-step CycleGAN at 2 µm per pixel (the ``tiny`` preset's) on a few frames."""
    vivo = render_split("train", 4, scene_kwargs={"size_px": 96})
    clean = render_clean_split("train", 4)
    out = tmp_path_factory.mktemp("gan")
    config = GanConfig(
        out_dir=out,
        minutes=None,
        steps=3,
        batch_size=2,
        crop_px=32,
        pixel_size_um=2.0,
        ngf=8,
        n_blocks=1,
        ndf=8,
        log_every_s=0.0,
        progress=False,
        num_threads=1,
    )
    result = train_cyclegan(config, DomainFrames(vivo, 2.0), DomainFrames(clean, 2.0), {"t": 1})
    assert result.steps == 3 and result.images_seen == 6 and len(result.history) == 3
    assert (out / "samples.png").is_file() and (out / "history.json").is_file()
    return result.path


def test_checkpoint_round_trip_and_clear_errors(tiny_gan: Path, tmp_path: Path) -> None:
    nets, data = load_cyclegan(tiny_gan)
    assert set(nets) == {"G", "F", "D_clean", "D_vivo"}
    assert data["network"]["crop_px"] == 32 and data["images_seen"] == 6
    enhancer = CropEnhancer.from_checkpoint(tiny_gan)
    assert enhancer.crop_px == 32 and enhancer.pixel_size_um == 2.0
    broken = tmp_path / "broken.pt"
    broken.write_bytes(tiny_gan.read_bytes()[:200])
    with pytest.raises(LocaliserError, match="cannot be read"):
        load_cyclegan(broken)
    with pytest.raises(LocaliserError, match="not found"):
        load_cyclegan(tmp_path / "missing.pt")
    with pytest.raises(LocaliserError, match="exactly one"):
        train_cyclegan(GanConfig(out_dir=tmp_path, minutes=1.0, steps=1), None, None, {})  # type: ignore[arg-type]


def test_enhancement_changes_only_crops_and_enhanced_evaluation_runs(tiny_gan: Path) -> None:
    enhancer = CropEnhancer.from_checkpoint(tiny_gan)
    image = np.random.default_rng(2).normal(size=(60, 60)).astype(np.float32)
    out = enhancer.enhance(image, np.array([[30.0, 30.0]]))
    changed = out != image
    assert changed[14:46, 14:46].any() and not changed[:14].any() and not changed[:, 46:].any()
    samples = render_split("test", 3, scene_kwargs={"size_px": 96})
    enhanced = enhance_sample_set(samples, enhancer, seed=0)
    assert enhanced.images[0].dtype == np.float16
    assert np.allclose(enhanced.pixel_size_um, 2.0) and len(enhanced) == 3
    model = create_localiser("tiny")
    with pytest.raises(LocaliserError, match="µm/px"):
        EnhancedLocaliser(create_localiser("fast"), enhancer)
    first_pass = Localiser(create_localiser("tiny"), confidence_threshold=0.2, num_threads=1)
    for candidates in (first_pass, None):
        localiser = EnhancedLocaliser(model, enhancer, candidates, num_threads=1)
        result = evaluate(localiser, samples)
        assert result.overall["n_frames"] == 3
        assert result.overall["heatmap_iou"] is not None
        assert localiser.localise(samples.images[0], float(samples.pixel_size_um[0])) is not None
