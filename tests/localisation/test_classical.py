"""The classical tip finder: clean single pipettes, the shared Localiser path, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from patchpilot.localisation import create_localiser, get_preset
from patchpilot.localisation.classical import ClassicalParams, find_tips
from patchpilot.localisation.evaluation import evaluate
from patchpilot.localisation.inference import Localiser
from patchpilot.localisation.sources import render_split
from patchpilot.scene import random_scene, render_clean


@pytest.fixture(autouse=True)
def _one_thread():  # type: ignore[no-untyped-def]
    """One torch thread: on a shared, loaded 2-core machine two threads stall each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _clean_frames(count: int) -> list[tuple[np.ndarray, float, tuple[float, float]]]:
    """Clean single-pipette frames whose tip lies at least 15 px inside the frame."""
    frames = []
    seed = 0
    while len(frames) < count:
        rng = np.random.default_rng(1000 + seed)
        seed += 1
        scene = random_scene(rng, clean_domain=True)
        image, truth = render_clean(scene, rng)
        tip = truth[0]
        rows, cols = image.shape
        if 15 <= tip.x_px <= cols - 16 and 15 <= tip.y_px <= rows - 16:
            frames.append((image, scene.view.pixel_size_um, (tip.x_px, tip.y_px)))
    return frames


def test_finds_the_tip_of_clean_single_pipettes_within_a_few_um() -> None:
    localiser = Localiser(create_localiser("classical"), num_threads=1)
    errors_um = []
    for image, pixel_um, (x, y) in _clean_frames(10):
        found = localiser.localise(image, pixel_um)
        if not found:
            errors_um.append(np.inf)
            continue
        best = max(found, key=lambda d: d.confidence)
        assert best.x_um == pytest.approx(best.x_px * pixel_um)
        errors_um.append(np.hypot(best.x_px - x, best.y_px - y) * pixel_um)
    # The strongest end is the tip in (nearly) every clean frame, within a few µm.
    assert np.sum(np.asarray(errors_um) <= 4.0) >= 8, errors_um


def test_ignores_padding_and_rejects_bad_images() -> None:
    image, pixel_um, _ = _clean_frames(1)[0]
    from patchpilot.localisation.preprocess import normalise, rescale_to_model

    scaled, _ = rescale_to_model(image.astype(np.float32), pixel_um, 1.0)
    scaled = normalise(scaled)
    padded = np.zeros((scaled.shape[0] + 40, scaled.shape[1] + 24), np.float32)
    padded[: scaled.shape[0], : scaled.shape[1]] = scaled
    plain = [(c.x_px, c.y_px) for c in find_tips(scaled)]
    assert [(c.x_px, c.y_px) for c in find_tips(padded)] == plain
    assert find_tips(np.zeros((64, 64), np.float32)) == []
    with pytest.raises(ValueError, match="2D"):
        find_tips(np.zeros((2, 8, 8), np.float32))


def test_parameters_come_from_the_preset_and_the_evaluation_runs() -> None:
    preset = get_preset("classical")
    assert preset.fully_convolutional and preset.max_tips == 4
    params = ClassicalParams.from_extra((("high", 7.0), ("not_a_field", 1)))
    assert params.high == 7.0 and params.low == ClassicalParams().low
    samples = render_split("test", 3, scene_kwargs={"size_px": 96})
    result = evaluate(Localiser(create_localiser(preset), num_threads=1), samples)
    assert result.overall["n_frames"] == 3 and result.overall["heatmap_iou"] is None
    assert result.overall["n_pred"] <= 4 * 3
