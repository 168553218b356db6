"""``patchpilot train / evaluate / export`` on a small COCO keypoints folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from patchpilot.cli import app
from patchpilot.localisation.checkpoint import load_checkpoint
from patchpilot.scene import SceneSampler, render
from patchpilot.scene.coco import CocoWriter


@pytest.fixture(scope="module")
def coco_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("coco")
    writer = CocoWriter(folder, info={"source": "test"})
    sampler = SceneSampler.for_split("val", size_px=80, pixel_size_um=2.0, n_pipettes=(1, 2))
    for index in range(10):
        scene, noise = sampler.scene(index)
        image, truth = render(scene, noise)
        writer.add(f"frame{index:03d}", image, truth, scene.view)
    writer.write()
    return folder


def test_train_evaluate_export(coco_folder: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "run"
    trained = runner.invoke(
        app,
        [
            "train",
            "--preset",
            "tiny",
            "--data",
            str(coco_folder),
            "--epochs",
            "1",
            "--out",
            str(out),
        ],
    )
    assert trained.exit_code == 0, trained.output
    assert "data: 9 training, 1 validation frames" in trained.output
    assert (out / "best.pt").is_file() and (out / "curves.png").is_file()

    metrics = tmp_path / "metrics.json"
    worst = tmp_path / "worst.png"
    evaluated = runner.invoke(
        app,
        ["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(coco_folder),
         "--n", "4", "--json", str(metrics), "--worst", str(worst), "--backend", "torch"],
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(metrics.read_text())
    assert report["info"]["preset"] == "tiny" and report["info"]["n_frames"] == 4
    assert {"within_3um", "precision", "recall", "mean_distance_um"} <= set(report["groups"]["all"])
    assert worst.stat().st_size > 1000

    # Fine-tuning starts from the trained weights and says so.
    tuned = runner.invoke(
        app,
        ["train", "--preset", "tiny", "--data", str(coco_folder), "--epochs", "1",
         "--init", str(out / "best.pt"), "--out", str(tmp_path / "tuned")],
    )  # fmt: skip
    assert tuned.exit_code == 0, tuned.output
    tuned_data = load_checkpoint(tmp_path / "tuned" / "last.pt")
    assert tuned_data["train_config"]["init_from"] == str(out / "best.pt")

    exported = runner.invoke(app, ["export", "--checkpoint", str(out / "best.pt")])
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.output)["bytes"] > 10_000
    assert (out / "best.onnx").is_file()


def test_clear_errors(coco_folder: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"\x00" * 100)
    result = runner.invoke(
        app, ["evaluate", "--checkpoint", str(broken), "--data", str(coco_folder)]
    )
    assert result.exit_code == 2
    assert "cannot be read" in result.output
    result = runner.invoke(app, ["train", "--preset", "nope", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown localiser preset 'nope'" in result.output
    result = runner.invoke(
        app, ["train", "--preset", "tiny", "--data", str(tmp_path), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "COCO data" in result.output
    saved = tmp_path / "train.npz"
    saved.write_bytes(b"")
    result = runner.invoke(
        app, ["train", "--preset", "tiny", "--data", str(saved), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "needs --val-data" in result.output
