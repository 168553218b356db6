"""The main job end to end: ``patchpilot dry-run`` with four pipettes on the simulated rig.

This runs the real thing: simulated manipulators with mounting errors, drift and backlash,
the simulated two-photon microscope behind a real pycromanager acquisition, the shipped
localiser, automatic calibration, target choice, planning and the closed-loop approach.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_dry_run_four_pipettes_reaches_every_target(tmp_path: Path) -> None:
    out = tmp_path / "report"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "patchpilot",
            "dry-run",
            "--config",
            str(ROOT / "configs" / "sim-4.yaml"),
            "--fast",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((out / "report.json").read_text())
    pipettes = summary["pipettes"]
    assert sorted(pipettes) == ["P1", "P2", "P3", "P4"]
    for name, result in pipettes.items():
        assert result["calibration"]["accepted"], (name, result["calibration"])
        assert result["final_state"] == "at_target", (name, result)
        assert result["final_error_um"] <= 2.0, (name, result)
    assert summary["success_rate"] == 1.0
    assert summary["min_clearance_um"] > 0.0
    assert (out / "report.png").stat().st_size > 10_000
    events = (out / "events.jsonl").read_text().splitlines()
    kinds = {json.loads(line)["kind"] for line in events}
    assert {"command", "transition", "calibration", "localisation"} <= kinds
    assert "report:" in run.stdout


def test_dry_run_refuses_a_real_rig(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "patchpilot",
            "dry-run",
            "--config",
            str(ROOT / "configs" / "sensapex-2.yaml"),
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2
    assert "not a simulated rig" in run.stderr


def test_dry_run_pipette_count_checked(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "patchpilot",
            "dry-run",
            "--pipettes",
            "9",
            "--config",
            str(ROOT / "configs" / "sim-4.yaml"),
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2
    assert "--pipettes must be between 1 and 4" in run.stderr
