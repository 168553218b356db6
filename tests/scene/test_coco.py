"""COCO keypoint files: written by the synthesiser, read back for training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from patchpilot.scene import SceneError, load_coco_keypoints, render, scene_for_seed
from patchpilot.scene.coco import CocoWriter, read_image, write_image


def _write_set(folder: Path) -> list[tuple[np.ndarray, list]]:
    writer = CocoWriter(folder, info={"split": "test"})
    frames = []
    for seed in range(4):
        scene, noise = scene_for_seed(seed, size_px=48, n_pipettes=(2, 4), pixel_size_um=1.3)
        image, truth = render(scene, noise)
        writer.add(f"{seed:03d}", image, truth, scene.view, seed=seed)
        frames.append((image, truth))
    writer.write()
    return frames


def test_round_trip_keeps_images_tips_and_pixel_size(tmp_path: Path) -> None:
    frames = _write_set(tmp_path)
    loaded = load_coco_keypoints(tmp_path)
    assert len(loaded) == len(frames)
    for (image, truth), item in zip(frames, loaded, strict=True):
        assert np.array_equal(read_image(item.path), image)
        expected = np.array([(t.x_px, t.y_px) for t in truth if t.in_frame]).reshape(-1, 2)
        assert np.allclose(item.tips_px, expected)
        assert item.pixel_size_um == pytest.approx(1.3)
        path, _tips, _pixel = item  # a plain (path, tips, pixel size) tuple as well
        assert path == item.path
    document = json.loads((tmp_path / "annotations.json").read_text())
    assert document["categories"][0]["name"] == "pipette_tip"
    per_image = sum(len(t) for _, t in frames)
    assert len(document["annotations"]) == per_image  # one per pipette, also outside the frame
    outside = [a for a in document["annotations"] if not a["in_frame"]]
    assert all(a["keypoints"][2] == 0 for a in outside)
    assert {"z_offset_um", "x_um", "y_um", "pipette_id"} <= set(document["annotations"][0])


def test_foreign_file_needs_a_pixel_size_and_clear_errors(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", np.full((20, 30), 500, dtype=np.uint16))
    document = {
        "images": [{"id": 7, "file_name": "a.png", "width": 30, "height": 20}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 3, "keypoints": [4.0, 5.0, 2]},
            {"id": 2, "image_id": 7, "category_id": 3, "keypoints": [0, 0, 0]},
        ],
        "categories": [{"id": 3, "name": "tip", "keypoints": ["tip"]}],
    }
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(document))
    with pytest.raises(SceneError, match="pixel_size_um"):
        load_coco_keypoints(path)
    (item,) = load_coco_keypoints(path, default_pixel_size_um=0.8)
    assert item.tips_px.tolist() == [[4.0, 5.0]] and item.pixel_size_um == 0.8
    path.write_text("{not json")
    with pytest.raises(SceneError, match=r"labels\.json"):
        load_coco_keypoints(path)
    document["images"][0]["file_name"] = "missing.png"
    path.write_text(json.dumps(document))
    with pytest.raises(SceneError, match=r"missing\.png"):
        load_coco_keypoints(path, default_pixel_size_um=1.0)
    with pytest.raises(SceneError, match="no such file"):
        load_coco_keypoints(tmp_path / "nothing")
    with pytest.raises(SceneError, match="uint16"):
        write_image(tmp_path / "b.png", np.zeros((4, 4), dtype=np.float32))
