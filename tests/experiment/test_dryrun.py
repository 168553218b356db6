"""The main job end to end: ``patchpilot dry-run`` with four pipettes on the simulated rig.

This runs the real thing: simulated manipulators with mounting errors, drift and backlash,
the simulated two-photon microscope behind a real pycromanager acquisition, the shipped
localiser, automatic calibration, target choice, planning and the closed-loop approach.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(900)  # the dry-run runs in real time: 4-6 min on two cores
def test_dry_run_four_pipettes_end_to_end(tmp_path: Path) -> None:
    """The whole job runs and reports; every pipette either reaches its target (within 2 µm
    of the physical tip) or stops safely with its reason: paused for the operator, not
    calibrated, or (if one is not) never started because the controller will not move
    pipettes near one whose position is unknown. Bodies keep the configured clearance.

    With the shipped localiser not every pipette reaches its target yet (README, Dry-run):
    exit status 3 says so, and this test holds the run to being safe and explained."""
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
    assert run.returncode in (0, 3), run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((out / "report.json").read_text())
    pipettes = summary["pipettes"]
    assert sorted(pipettes) == ["P1", "P2", "P3", "P4"]
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    pauses = {
        e["source"]: e["reason"]
        for e in events
        if e["kind"] == "decision" and e["message"] == "paused for the operator"
    }
    for name, result in pipettes.items():
        state = result["final_state"]
        if state == "at_target":
            assert result["calibration"]["accepted"], (name, result)
            assert result["final_error_um"] <= 2.0, (name, result)
        elif state == "paused":
            assert pauses.get(name), (name, "paused without a reason in the event log")
        elif state == "ready":  # the controller refused to start (a pipette not calibrated)
            assert summary["approach_refused"] and "not calibrated" in summary["approach_refused"]
        else:
            assert state == "not calibrated", (name, result)
            assert not result["calibration"]["accepted"] and result["calibration"]["reason"]
    reached = sum(r["final_state"] == "at_target" for r in pipettes.values())
    assert summary["success_rate"] == pytest.approx(reached / 4)
    assert (run.returncode == 0) == (reached == 4)
    assert summary["min_clearance_um"] >= 15.0  # safety.min_clearance_um of sim-4
    assert not [e for e in events if e["kind"] == "fault" and "collision" in e["message"]]
    assert (out / "report.png").stat().st_size > 10_000
    kinds = {e["kind"] for e in events}
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


@pytest.mark.slow
def test_run_observe_only_localises_and_never_moves(tmp_path: Path) -> None:
    """``patchpilot run --observe-only`` on the simulated rig (it used to refuse to build: the
    camera could not see through the observe-only wrapper): frames are localised, no move is
    ever sent, Ctrl-C ends it."""
    out = tmp_path / "run"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "patchpilot",
            "run",
            "--config",
            str(ROOT / "configs" / "sim-4.yaml"),
            "--observe-only",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    events = out / "events.jsonl"
    deadline = time.monotonic() + 120.0
    while time.monotonic() < deadline and process.poll() is None:
        if events.is_file() and events.read_text().count('"localisation"') >= 10:
            break
        time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output[-3000:]
    assert "stopped" in output
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert sum(r["kind"] == "localisation" for r in records) >= 10
    assert not [r for r in records if r["kind"] == "command" and r["message"] == "move"]
