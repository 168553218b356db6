"""The panel's backend on a running dry-run experiment (real time, no browser)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from patchpilot.panel import ControllerBackend
from tests.panel.dry_run import DryRun
from tests.panel.rig import rig_config


@pytest.fixture
def dry_run(tmp_path: Path) -> Iterator[DryRun]:
    run = DryRun(rig_config(2), tmp_path / "run")
    yield run
    run.close()


def test_stop_all_holds_during_a_calibration(dry_run: DryRun) -> None:
    """The controller's calibration does not abort on stop-all: it sends the pipette back to
    where it started. The panel re-stops it, so it stays where STOP ALL caught it."""
    backend = ControllerBackend.from_experiment(dry_run.experiment)
    start = dry_run.position("P1")
    backend.calibrate("P1")
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        if float(np.linalg.norm(dry_run.position("P1") - start)) > 8.0:
            break
        time.sleep(0.002)
    else:
        pytest.fail("the calibration never took P1 8 µm from its start")

    results = backend.stop_all()
    caught = dry_run.position("P1")

    assert results == {"P1": None, "P2": None}
    assert backend.wait_calibration(30.0)
    time.sleep(0.5)
    final = dry_run.position("P1")
    assert float(np.linalg.norm(final - caught)) < 4.0, "P1 kept moving after STOP ALL"
    assert float(np.linalg.norm(final - start)) > 4.0, "P1 went back to its start"
    assert {dry_run.state(n) for n in ("P1", "P2")} == {"stopped"}
    backend.close()


def test_backend_follows_the_experiment_frames(dry_run: DryRun) -> None:
    backend = ControllerBackend.from_experiment(dry_run.experiment)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and backend.stats().frames_seen < 10:
        time.sleep(0.05)
    stats = backend.stats()
    assert stats.frames_seen >= 10
    assert stats.frame_rate_hz is not None and stats.frame_rate_hz > 0
    assert stats.localiser_latency_ms is not None
    live = backend.latest_frame()
    assert live is not None and live.frame.image.shape == (256, 256)
    assert len(live.detections) == 2  # both tips are in view
    backend.close()
    seen = backend.stats().frames_seen
    time.sleep(0.3)
    assert backend.stats().frames_seen == seen  # unsubscribed
