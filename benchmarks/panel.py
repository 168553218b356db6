"""The panel in headless Chromium against a running dry run: STOP ALL latency and update rates.

A three-pipette dry run (``tests/panel/dry_run.py``: the real ``Experiment`` with simulated
manipulators in real time, a real pycromanager acquisition, a truth-reading localiser double)
is served by the panel; Debian's chromium opens it through Playwright. Each round starts the
approach, waits until every device is moving, clicks STOP ALL (or presses Escape) and reads
from the event log when each manipulator got its first stop command. Also counts the views
and frames the page receives per second. Goal: STOP ALL <= 100 ms; >= 10 updates/s.

    .venv/bin/python benchmarks/panel.py [--rounds N] [--seconds S] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.panel.dry_run import DryRun  # noqa: E402
from tests.panel.rig import rig_config  # noqa: E402
from tests.panel.test_browser import CHROMIUM_ARGS, TARGETS  # noqa: E402


def _wait(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise TimeoutError(f"timed out waiting for {what}")


def _round(page: Any, run: DryRun, index: int) -> dict[str, float]:
    controller = run.experiment.controller
    if controller.state.value == "stopped":
        controller.rearm()
    shift_um = 25.0 * (index % 2)  # a new target each round, so there is always travel
    for name, (x, y, z) in TARGETS.items():
        controller.set_target(name, (x + shift_um, y - shift_um, z))
    controller.start_approach()
    _wait(lambda: all(run.manipulators[n].is_busy() for n in TARGETS), 10.0, "every device busy")
    time.sleep(0.2)
    if index % 2:
        page.keyboard.press("Escape")
    else:
        page.click("#stop-all")
    _wait(lambda: all(run.state(n) == "stopped" for n in TARGETS), 5.0, "every pipette stopped")
    time.sleep(0.2)
    clicked_s = page.evaluate("window.__stopClickedAt") / 1000.0
    first_stop: dict[str, float] = {}
    received: dict[str, float] = {}
    for event in run.events():
        if event["t"] < clicked_s - 0.001:
            continue
        if event["kind"] == "command" and event["message"] == "stop":
            first_stop.setdefault(event["source"], event["t"])
        if event["source"] == "panel" and event["message"] == "stop all":
            received.setdefault(event["via"], event["received_t"])
    return {
        "last_stop_ms": (max(first_stop.values()) - clicked_s) * 1000.0,
        "first_stop_ms": (min(first_stop.values()) - clicked_s) * 1000.0,
        "websocket_received_ms": (received.get("websocket", float("nan")) - clicked_s) * 1000.0,
        "http_received_ms": (received.get("http", float("nan")) - clicked_s) * 1000.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="STOP ALL presses (half by key)")
    parser.add_argument("--seconds", type=float, default=5.0, help="update-rate window (s)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("Debian chromium is missing: run `make system-deps`")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        run = DryRun(rig_config(3, fast_speed_um_s=80.0), Path(tmp) / "run")
        try:
            for name, target in TARGETS.items():
                run.experiment.controller.set_target(name, target)
            server = run.serve()
            browser = playwright.chromium.launch(
                executable_path=chromium, args=CHROMIUM_ARGS, headless=True
            )
            page = browser.new_page(viewport={"width": 1400, "height": 950})
            page.goto(server.url)
            page.wait_for_selector("body[data-link=up]", timeout=10_000)
            time.sleep(1.0)
            counts = "[window.patchpilot.viewCount, window.patchpilot.frameCount]"
            views0, frames0 = page.evaluate(counts)
            time.sleep(args.seconds)
            views1, frames1 = page.evaluate(counts)
            camera = run.experiment.stats()
            rounds = [_round(page, run, i) for i in range(args.rounds)]
            browser.close()
        finally:
            run.close()
    last = [r["last_stop_ms"] for r in rounds]
    figures = {
        "views_per_s": (views1 - views0) / args.seconds,
        "frames_per_s_shown": (frames1 - frames0) / args.seconds,
        "camera_frames_per_s": camera["frame_rate_hz"],
        "stop_all_rounds": len(rounds),
        "stop_all_last_stop_ms_median": statistics.median(last),
        "stop_all_last_stop_ms_max": max(last),
        "stop_all_first_stop_ms_median": statistics.median(r["first_stop_ms"] for r in rounds),
        "websocket_received_ms_median": statistics.median(
            r["websocket_received_ms"] for r in rounds
        ),
        "http_received_ms_median": statistics.median(r["http_received_ms"] for r in rounds),
        "rounds": rounds,
    }
    for key, value in figures.items():
        if key != "rounds":
            print(f"{key:32s} {value:8.1f}" if isinstance(value, float) else f"{key:32s} {value}")
    print("last stop per round (ms):", " ".join(f"{v:.1f}" for v in last))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
