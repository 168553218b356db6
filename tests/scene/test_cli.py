"""``patchpilot dataset synth|show`` and ``patchpilot simulate``."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from patchpilot.cli import app
from patchpilot.scene import SPLIT_SEEDS, load_coco_keypoints

runner = CliRunner()


def test_synth_then_show(tmp_path: Path) -> None:
    out = tmp_path / "set"
    result = runner.invoke(
        app,
        [
            "dataset",
            "synth",
            "--n",
            "3",
            "--pipettes",
            "1-2",
            "--out",
            str(out),
            "--seed",
            "5",
            "--split",
            "test",
            "--pixel-size",
            "1.5",
            "--size",
            "48",
            "--frames-per-scene",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads((out / "annotations.json").read_text())
    low = SPLIT_SEEDS["test"][0]
    assert document["info"]["seed_range"] == [low + 5, low + 8]
    assert {image["seed"] for image in document["images"]} == {low + 5, low + 6, low + 7}
    assert len(document["images"]) == 6
    loaded = load_coco_keypoints(out)
    assert all(item.pixel_size_um == 1.5 for item in loaded)
    with Image.open(loaded[0].path) as image:
        assert image.mode.startswith("I;16") and image.size == (48, 48)
    sheet = tmp_path / "sheet.png"
    result = runner.invoke(app, ["dataset", "show", str(out), "--out", str(sheet)])
    assert result.exit_code == 0, result.output
    with Image.open(sheet) as image:
        assert image.size[0] > 4 * 48


def test_synth_refuses_a_range_past_its_split(tmp_path: Path) -> None:
    size = SPLIT_SEEDS["val"][1] - SPLIT_SEEDS["val"][0]
    result = runner.invoke(
        app,
        [
            "dataset",
            "synth",
            "--n",
            "2",
            "--split",
            "val",
            "--seed",
            str(size - 1),
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code != 0 and "past the val split" in result.output
    result = runner.invoke(app, ["dataset", "synth", "--pipettes", "9", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "1-4" in result.output
    result = runner.invoke(app, ["dataset", "show", str(tmp_path / "none")])
    assert result.exit_code == 2 and "no such file" in result.output


def test_simulate_writes_a_sequence(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["simulate", "--out", str(tmp_path), "--frames", "3", "--size", "40", "--seed", "2"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("frame_*.png")) == [
        "frame_000.png",
        "frame_001.png",
        "frame_002.png",
    ]
    records = json.loads((tmp_path / "truth.json").read_text())
    assert len(records) == 3 and records[1]["time_s"] > records[0]["time_s"]
    assert (tmp_path / "preview.png").is_file()
