"""Short real training runs on simulated frames: the loss falls, stages run, resume works,
and evaluation scores the result."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from patchpilot.localisation import LocaliserError
from patchpilot.localisation.calibration import GRID
from patchpilot.localisation.checkpoint import load_checkpoint
from patchpilot.localisation.evaluation import evaluate, plot_worst, results_table
from patchpilot.localisation.export import ship_weights
from patchpilot.localisation.inference import Localiser
from patchpilot.localisation.samples import SampleSet
from patchpilot.localisation.sources import render_split
from patchpilot.localisation.training import TrainConfig, cosine_factor, train


@pytest.fixture(scope="module")
def frames() -> tuple[SampleSet, SampleSet]:
    kwargs = {"size_px": 48, "pixel_size_um": (1.8, 2.2), "n_pipettes": (1, 3)}
    return (
        render_split("train", 24, scene_kwargs=kwargs),
        render_split("val", 6, scene_kwargs=kwargs),
    )


def test_training_lowers_the_loss(frames: tuple[SampleSet, SampleSet], tmp_path: Path) -> None:
    train_set, val_set = frames
    config = TrainConfig(
        preset="fast",
        out_dir=tmp_path,
        epochs=8,
        progress=False,
        overrides={"input_size_px": 64, "train_crop_px": 64, "batch_size": 24},
    )
    result = train(config, train_set, val_set, {"source": "test"})
    losses = [h["train_loss"] for h in result.history]
    assert len(losses) == 8
    # Eight full-batch steps: the last two clearly below the first two.
    assert sum(losses[-2:]) < 0.92 * sum(losses[:2]), losses
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert json.loads((tmp_path / "history.json").read_text())[-1]["epoch"] == 7
    data = load_checkpoint(result.best_path)
    assert data["provenance"] == {"source": "test"}
    assert data["optimizer_state"] is not None


def test_paper_stages_resume_and_evaluation(
    frames: tuple[SampleSet, SampleSet], tmp_path: Path
) -> None:
    train_set, val_set = frames
    base = TrainConfig(preset="tiny", out_dir=tmp_path, epochs=3, progress=False)
    first = train(base, train_set, val_set, {})
    assert [h["stage"] for h in first.history] == ["encoder", "decoder", "joint"]
    # Simulate a run killed after its first epoch: keep that epoch's state in last.pt.
    data = torch.load(tmp_path / "last.pt", weights_only=True)
    data.update(stage_index=1, epoch_in_stage=0, epoch=1, history=data["history"][:1])
    torch.save(data, tmp_path / "last.pt")
    resumed = train(
        TrainConfig(preset="tiny", out_dir=tmp_path, epochs=3, progress=False, resume=True),
        train_set,
        val_set,
        {},
    )
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2]
    assert [h["stage"] for h in resumed.history] == ["encoder", "decoder", "joint"]
    assert resumed.history[0] == first.history[0]
    with pytest.raises(LocaliserError, match="not 'fast'"):
        train(
            TrainConfig(preset="fast", out_dir=tmp_path, epochs=1, progress=False, resume=True),
            train_set,
            val_set,
            {},
        )
    # The presence threshold was chosen on the validation frames and travels with the file.
    stored = load_checkpoint(resumed.last_path)
    assert stored["presence_threshold"] in GRID
    assert stored["threshold_calibration"]["frames"] == len(val_set)
    localiser = Localiser.from_checkpoint(resumed.last_path)
    assert localiser.confidence_threshold == stored["presence_threshold"]
    # ... and through shipping (the shipped default must not fall back to 0.5).
    shipped = ship_weights(resumed.last_path, tmp_path / "weights", "mine")
    assert (
        load_checkpoint(shipped["checkpoint"])["presence_threshold"] == stored["presence_threshold"]
    )
    reloaded = Localiser.from_checkpoint(shipped["checkpoint"])
    assert reloaded.confidence_threshold == stored["presence_threshold"]
    result = evaluate(localiser, val_set)
    overall = result.overall
    assert overall["n_frames"] == len(val_set)
    # Only in-focus tips are required; the others are "don't care".
    assert overall["n_true"] == sum(len(val_set.required_px(i)) for i in range(len(val_set)))
    assert result.strict["n_true"] == sum(len(t) for t in val_set.tips_px)
    assert result.strict["n_pred"] >= overall["n_pred"]
    assert overall["heatmap_iou"] is not None and 0.0 <= float(overall["heatmap_iou"]) <= 1.0
    assert set(result.groups) >= {"all"}
    table = results_table({"tiny": result})
    assert table.row_count == len(result.groups)
    assert plot_worst(val_set, result, tmp_path / "worst.png", count=3).stat().st_size > 1000
    saved = json.loads(result.write_json(tmp_path / "m.json").read_text())
    assert saved["info"]["preset"] == "tiny"


def test_bad_training_requests(frames: tuple[SampleSet, SampleSet], tmp_path: Path) -> None:
    train_set, val_set = frames
    with pytest.raises(LocaliserError, match="either epochs or minutes"):
        train(TrainConfig("tiny", tmp_path, epochs=1, minutes=1.0), train_set, val_set, {})
    empty = train_set.subset(np.zeros(0, dtype=int))
    with pytest.raises(LocaliserError, match="empty data"):
        train(TrainConfig("tiny", tmp_path, epochs=1), empty, val_set, {})


def test_cosine_schedule_shape() -> None:
    assert cosine_factor(0.0) == pytest.approx(0.01)
    assert cosine_factor(0.015) == pytest.approx(0.5)
    assert cosine_factor(0.03) == pytest.approx(1.0)
    assert cosine_factor(0.515) == pytest.approx(0.505, abs=1e-3)
    assert cosine_factor(1.0) == pytest.approx(0.01)
    values = [cosine_factor(p / 100) for p in range(3, 101)]
    assert all(a >= b for a, b in itertools.pairwise(values))
