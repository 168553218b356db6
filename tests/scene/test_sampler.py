"""The training distribution and its splits by scene family."""

from __future__ import annotations

import itertools

import numpy as np

from patchpilot.scene import (
    SPLIT_SEEDS,
    SceneSampler,
    random_scene,
    render,
    scene_for_seed,
    split_of_seed,
)


def test_split_seed_ranges_are_disjoint_and_sampler_uses_them() -> None:
    ranges = sorted(SPLIT_SEEDS.values())
    for (_, high), (low, _) in itertools.pairwise(ranges):
        assert high <= low
    val = SceneSampler("val")
    assert val.seed(0) == SPLIT_SEEDS["val"][0]
    assert len(val) == SPLIT_SEEDS["val"][1] - SPLIT_SEEDS["val"][0]
    assert split_of_seed(val.seed(5)) == "val" and split_of_seed(-1) is None
    scene_a, _ = val.scene(3)
    scene_b, _ = scene_for_seed(SPLIT_SEEDS["val"][0] + 3)
    assert scene_a.pipettes == scene_b.pipettes and scene_a.view == scene_b.view


def test_random_scenes_cover_what_rigs_vary() -> None:
    rng = np.random.default_rng(0)
    scenes = [random_scene(rng, size_px=32) for _ in range(300)]
    counts = [len(s.pipettes) for s in scenes]
    assert min(counts) == 0 and max(counts) >= 6 and np.mean([1 <= c <= 4 for c in counts]) > 0.6
    pixels = [s.view.pixel_size_um for s in scenes]
    assert min(pixels) < 0.6 and max(pixels) > 1.9
    snr = [s.acquisition.background_snr() for s in scenes]
    # Background 10 to 150 photons per pixel: shot-noise SNR from about 3 (grainy, as in the
    # real in vivo frame) to above 7.
    assert min(snr) < 3.0 and max(snr) > 7.0
    poses = [p for s in scenes for p in s.pipettes]
    polarities = {p.polarity if isinstance(p.polarity, str) else "float" for p in poses}
    assert polarities == {"dark", "bright", "mixed", "float"}
    dz = np.array([p.tip_um[2] - s.view.focus_um for s in scenes for p in s.pipettes])
    assert (dz > 10).any() and (dz < -10).any() and (np.abs(dz) < 3).mean() > 0.3
    assert any(p.plume_strength > 0 for p in poses) and any(p.plume_strength == 0 for p in poses)
    assert any(any(p.velocity_um_s) for p in poses)
    assert {s.view.focus_um > s.tissue.surface_z_um for s in scenes} == {True, False}
    outside = edge = 0
    gaps = []
    for scene in scenes:
        fov = scene.view.width_px * scene.view.pixel_size_um
        tips = np.array([p.tip_um[:2] for p in scene.pipettes]).reshape(-1, 2)
        rel = np.abs(tips - np.asarray(scene.view.fov_center_um)).max(axis=1) if len(tips) else []
        outside += int(np.sum(np.asarray(rel) > fov / 2))
        edge += int(np.sum((np.asarray(rel) > 0.4 * fov) & (np.asarray(rel) <= fov / 2)))
        if len(tips) > 1:
            d = np.linalg.norm(tips[:, None] - tips[None], axis=-1)
            gaps.extend(d[np.triu_indices(len(tips), 1)])
    assert outside > 5 and edge > 5
    assert 15 < np.median(gaps) < 150
    yaws = [p.yaw_deg for s in scenes for p in s.pipettes]
    assert np.histogram(np.mod(yaws, 360), bins=4, range=(0, 360))[0].min() > 20


def test_clean_domain_scenes_hold_one_in_focus_pipette() -> None:
    scene = random_scene(np.random.default_rng(1), clean_domain=True, size_px=48)
    assert scene.clean_domain and len(scene.pipettes) == 1
    _, truth = render(scene, np.random.default_rng(0))
    assert truth[0].in_focus
