"""Recording through pycromanager's storage, then replay: the same tips come back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from patchpilot.acquisition.recording import RecordingError, open_recording
from patchpilot.acquisition.replay import replay_recording
from patchpilot.types import TipDetection

from .conftest import BrightestSpotLocaliser


class ShiftedLocaliser(BrightestSpotLocaliser):
    """Finds the spot 3 px to the right of where it is (a different model)."""

    def localise(self, image: Any, pixel_size_um: float) -> list[TipDetection]:
        return [
            TipDetection(d.x_px + 3, d.y_px, d.x_um, d.y_um, d.confidence)
            for d in super().localise(image, pixel_size_um)
        ]


def test_replay_reproduces_the_live_tips(recorded: Path, tmp_path: Path) -> None:
    with open_recording(recorded) as recording:
        assert recording.time_indices == list(range(30))
        live = recording.localisations
        assert 0 < len(live) <= 30  # skipped frames have no live result
        frame = recording.frame(5)
        assert frame.pixel_size_um == 0.5 and frame.focus_um == 4.0
        report = replay_recording(recording, BrightestSpotLocaliser(), tmp_path / "out")
    metrics = json.loads(report.metrics_path.read_text())
    assert metrics["frames_replayed"] == 30
    assert metrics["frames_with_live_result"] == len(live)
    assert metrics["frames_reproduced"] == len(live)
    assert metrics["discrepancy_px_max"] == 0.0
    first = metrics["per_frame"][0]
    assert first["tips_px"][0][:2] == [10.0, 30.0]  # SpotSource's frame-0 spot
    assert len(report.png_paths) == 30 and report.gif_path is not None
    from PIL import Image

    with Image.open(report.gif_path) as gif:
        assert getattr(gif, "n_frames", 1) == 30
        assert gif.size == (96, 64)


def test_replay_with_another_localiser_shows_the_difference(recorded: Path, tmp_path: Path) -> None:
    observed: list[int] = []
    with open_recording(recorded) as recording:
        report = replay_recording(
            recording,
            ShiftedLocaliser(),
            tmp_path / "shifted",
            observers=[lambda frame, detections: observed.append(frame.index)],
            labeller=lambda frame, detections: ["P1"] * len(detections),
            write_png=False,
            max_frames=10,
        )
    assert observed == list(range(10))
    assert report.metrics["frames_reproduced"] == 0
    assert report.metrics["discrepancy_px_max"] == pytest.approx(3.0)
    assert report.png_paths == ()
    assert report.metrics["per_frame"][0]["labels"] == ["P1"]


def test_bad_recording_folders_are_named(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="not a folder"):
        open_recording(tmp_path / "missing")
    with pytest.raises(RecordingError, match="no NDTiff dataset"):
        open_recording(tmp_path)
    for name in ("a_1", "b_1"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "NDTiff.index").write_bytes(b"")
    with pytest.raises(RecordingError, match="several datasets"):
        open_recording(tmp_path)
    with pytest.raises(RecordingError, match="holds no frames"):
        open_recording(tmp_path / "a_1")
    (tmp_path / "b_1" / "NDTiff.index").write_bytes(b"\x07garbage")
    with pytest.raises(RecordingError, match="b_1"):
        open_recording(tmp_path / "b_1")
