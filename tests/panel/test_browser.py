"""The panel in real headless Chromium against a running dry-run experiment.

Debian's ``/usr/bin/chromium`` (``make system-deps``) is driven by Playwright; the experiment
runs in real time (simulated manipulators on a ``RealClock``, a real pycromanager acquisition)
and the panel is served by uvicorn on a free port of 127.0.0.1. The STOP ALL latency (click ->
every manipulator's stop command, from the event log) is printed, not asserted.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from patchpilot.config import CylinderZone
from tests.panel.dry_run import DryRun
from tests.panel.rig import rig_config

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TARGETS = {"P1": (-20.0, -10.0, -40.0), "P2": (25.0, -20.0, -50.0), "P3": (20.0, 30.0, -45.0)}
AUTOMATIC = {"moving", "approaching", "correcting"}
DOCS = Path(__file__).resolve().parents[2] / "docs"

if CHROMIUM is None:
    pytest.skip(
        "Debian chromium is not installed (run `make system-deps`)", allow_module_level=True
    )


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def dry_run(tmp_path: Path) -> Iterator[DryRun]:
    vessel = CylinderZone(
        name="vessel", center_xy_um=(-70.0, 75.0), radius_um=12.0, z_min_um=-400.0, z_max_um=0.0
    )
    run = DryRun(rig_config(3, fast_speed_um_s=80.0, zones=(vessel,)), tmp_path / "run")
    for name, target in TARGETS.items():
        run.experiment.controller.set_target(name, target)
    run.serve()
    yield run
    run.close()


@pytest.fixture
def page(browser: Any, dry_run: DryRun) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 950})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    assert dry_run.server is not None
    page.goto(dry_run.server.url)
    page.wait_for_selector("body[data-link=up]", timeout=10_000)
    page.wait_for_function("window.patchpilot.frameCount > 2", timeout=10_000)
    yield page
    context.close()
    assert not errors, f"errors in the page: {errors}"


def start_approach(page: Any, run: DryRun) -> None:
    page.click("#start-approach")
    page.click("#confirm-ok")  # a dangerous action: confirmed in the modal
    wait_until(
        lambda: all(run.state(n) in AUTOMATIC for n in TARGETS), 10.0, "every pipette moving"
    )
    wait_until(
        lambda: all(run.manipulators[n].is_busy() for n in TARGETS), 5.0, "every device busy"
    )


def stop_latency_ms(page: Any, run: DryRun) -> float:
    """Click (in the page) -> the last manipulator's first stop command (event log), ms."""
    clicked_s = float(page.evaluate("window.__stopClickedAt")) / 1000.0
    first_stop: dict[str, float] = {}
    for event in run.events():
        if event["kind"] == "command" and event["message"] == "stop" and event["t"] >= clicked_s:
            first_stop.setdefault(event["source"], event["t"])
    assert set(first_stop) == set(TARGETS), f"stops seen for {sorted(first_stop)}"
    return (max(first_stop.values()) - clicked_s) * 1000.0


def assert_all_stopped(run: DryRun) -> None:
    wait_until(
        lambda: all(run.state(n) == "stopped" for n in TARGETS), 5.0, "every pipette stopped"
    )
    wait_until(lambda: not any(m.is_busy() for m in run.manipulators.values()), 2.0, "devices idle")
    before = {n: run.position(n) for n in TARGETS}
    time.sleep(0.4)
    for name, position in before.items():
        assert np.max(np.abs(run.position(name) - position)) < 0.3, f"{name} still moves"


def test_stop_all_button_stops_every_manipulator(
    page: Any, dry_run: DryRun, capsys: pytest.CaptureFixture[str]
) -> None:
    start_approach(page, dry_run)
    page.click("#stop-all")
    assert_all_stopped(dry_run)
    latency_ms = stop_latency_ms(page, dry_run)
    page.wait_for_selector("#coordinator.stopped", timeout=5_000)
    with capsys.disabled():
        print(f"\nSTOP ALL (button): click -> last stop command {latency_ms:.1f} ms")


def test_escape_stops_everything(
    page: Any, dry_run: DryRun, capsys: pytest.CaptureFixture[str]
) -> None:
    start_approach(page, dry_run)
    page.keyboard.press("Escape")
    assert_all_stopped(dry_run)
    latency_ms = stop_latency_ms(page, dry_run)
    assert page.evaluate("window.__stopSource") == "escape"
    with capsys.disabled():
        print(f"\nSTOP ALL (Escape): key -> last stop command {latency_ms:.1f} ms")


def test_stop_all_without_the_websocket(page: Any, dry_run: DryRun) -> None:
    """The plain HTTP POST alone stops everything (the page's websocket closed first)."""
    start_approach(page, dry_run)
    page.evaluate("window.patchpilot.socket.onclose = null; window.patchpilot.socket.close()")
    page.wait_for_function("window.patchpilot.socket.readyState === WebSocket.CLOSED")
    page.click("#stop-all")
    assert_all_stopped(dry_run)
    events = dry_run.events()
    operator = [e for e in events if e["source"] == "panel" and e["message"] == "stop all"]
    assert [e["via"] for e in operator] == ["http"]


def test_take_over_jog_and_release(page: Any, dry_run: DryRun) -> None:
    start_approach(page, dry_run)
    card = page.locator('.card[data-pipette="P1"]')
    card.locator(".take-over").click()
    wait_until(lambda: dry_run.state("P1") == "manual", 5.0, "P1 under manual control")
    page.wait_for_selector('.card[data-pipette="P1"].manual', timeout=5_000)
    wait_until(lambda: not dry_run.manipulators["P1"].is_busy(), 2.0, "P1 at rest")

    frozen = dry_run.position("P1")
    others = {n: dry_run.position(n) for n in ("P2", "P3")}
    time.sleep(0.6)
    assert np.max(np.abs(dry_run.position("P1") - frozen)) < 0.3, "automation moved P1"
    assert any(np.linalg.norm(dry_run.position(n) - p) > 2.0 for n, p in others.items())

    card.locator(".step").select_option("10")
    card.locator('.jog-pad [data-axis="x"][data-sign="1"]').click()
    wait_until(lambda: dry_run.position("P1")[0] - frozen[0] > 9.5, 5.0, "P1 jogged 10 µm along x")
    wait_until(lambda: not dry_run.manipulators["P1"].is_busy(), 2.0, "the jog finished")
    jogged = dry_run.position("P1") - frozen
    assert jogged[0] == pytest.approx(10.0, abs=0.5)
    assert abs(jogged[1]) < 0.5 and abs(jogged[2]) < 0.5

    card.locator(".release").click()
    page.wait_for_selector("#confirm-modal:not([hidden])")
    assert "Release P1" in page.inner_text("#confirm-text")
    page.click("#confirm-ok")
    wait_until(lambda: dry_run.state("P1") in AUTOMATIC, 5.0, "P1 back under automation")
    released = dry_run.position("P1")
    wait_until(
        lambda: bool(np.linalg.norm(dry_run.position("P1") - released) > 2.0),
        5.0,
        "P1 moving again",
    )


def test_set_a_target_by_clicking_the_image(page: Any, dry_run: DryRun) -> None:
    page.locator('.card[data-pipette="P2"] .set-target').click()
    box = page.locator("#frame").bounding_box()
    # Pixel (147.5, 157.5) of the 256 px frame (1 µm/px, centred on 0) is (20, 30) µm.
    x = box["x"] + (147.5 + 0.5) / 256.0 * box["width"]
    y = box["y"] + (157.5 + 0.5) / 256.0 * box["height"]
    page.mouse.click(x, y)
    wait_until(
        lambda: dry_run.experiment.controller.status()["P2"].target_um != TARGETS["P2"],
        5.0,
        "the new target",
    )
    target = dry_run.experiment.controller.status()["P2"].target_um
    assert target is not None
    assert target[:2] == pytest.approx((20.0, 30.0), abs=1.5)
    page.wait_for_selector("#message.ok", timeout=5_000)


def test_cancelled_confirmation_does_nothing(page: Any, dry_run: DryRun) -> None:
    page.click("#start-approach")
    page.click("#confirm-cancel")
    time.sleep(0.5)
    assert dry_run.experiment.controller.state.value == "idle"
    assert all(dry_run.state(n) == "ready" for n in TARGETS)


def test_page_reconnects_after_a_server_restart(page: Any, dry_run: DryRun) -> None:
    assert dry_run.server is not None
    port = dry_run.server.port
    dry_run.stop_serving()
    page.wait_for_selector("body[data-link=down]", timeout=10_000)
    frames = page.evaluate("window.patchpilot.frameCount")
    dry_run.serve(port=port)
    page.wait_for_selector("body[data-link=up]", timeout=10_000)
    page.wait_for_function(f"window.patchpilot.frameCount > {frames + 5}", timeout=10_000)
    page.click("#stop-all")  # and it commands the new server
    wait_until(
        lambda: all(dry_run.state(n) == "stopped" for n in TARGETS), 5.0, "stopped after restart"
    )


def test_screenshot(browser: Any, dry_run: DryRun, tmp_path: Path) -> None:
    """The README's picture: the pipettes at their checkpoints in view, one under manual
    control. Written to docs/panel.png only with PATCHPILOT_UPDATE_DOCS=1 (a test run must not
    change tracked files)."""
    target = DOCS if os.environ.get("PATCHPILOT_UPDATE_DOCS") == "1" else tmp_path
    assert dry_run.server is not None
    context = browser.new_context(viewport={"width": 1400, "height": 1080})
    page = context.new_page()
    try:
        page.goto(dry_run.server.url)
        page.wait_for_selector("body[data-link=up]", timeout=10_000)
        start_approach(page, dry_run)
        controller = dry_run.experiment.controller

        def at_checkpoints() -> bool:  # measured above the surface, in view
            return all(s.state != "moving" for s in controller.status().values())

        wait_until(at_checkpoints, 30.0, "every pipette at its checkpoint")
        page.locator('.card[data-pipette="P3"] .take-over').click()
        page.wait_for_selector('.card[data-pipette="P3"].manual', timeout=5_000)
        time.sleep(0.5)
        target.mkdir(exist_ok=True)
        page.screenshot(path=str(target / "panel.png"))
    finally:
        context.close()
    assert (target / "panel.png").stat().st_size > 20_000
