"""Every panel command on a real controller with simulated manipulators (SimClock), and what
the manipulators actually did."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from patchpilot.hardware import MoveStatus
from patchpilot.panel import ControllerBackend
from tests.panel.conftest import assert_stopped, last_seq, moves_since
from tests.panel.rig import PanelRig, build_rig, rig_config

TARGETS = {"P1": (-20.0, -10.0, -40.0), "P2": (25.0, -20.0, -50.0), "P3": (20.0, 30.0, -45.0)}


def post_json(
    client: TestClient, path: str, body: dict[str, object] | str
) -> tuple[int, dict[str, Any]]:
    """POST a body; a string is sent as is (JSON with NaN or Infinity, which httpx refuses).

    Returns the status code and the decoded answer.
    """
    if isinstance(body, str):
        answer = client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        answer = client.post(path, json=body)
    decoded: dict[str, Any] = answer.json()
    return answer.status_code, decoded


def start_moving(rig: PanelRig, client: TestClient) -> None:
    for name, target in TARGETS.items():
        rig.controller.set_target(name, target)
    answer = client.post("/api/start_approach")
    assert answer.status_code == 200, answer.text
    rig.run(0.2)
    assert {s.state for s in rig.controller.status().values()} == {"moving"}


def test_stop_all_stops_every_manipulator(rig: PanelRig, client: TestClient) -> None:
    start_moving(rig, client)
    moving = rig.positions()
    rig.run(0.1)
    assert all(np.linalg.norm(rig.position(n) - p) > 1.0 for n, p in moving.items())

    answer = client.post("/api/stop_all")

    assert answer.status_code == 200
    assert answer.json()["results"] == {"P1": None, "P2": None, "P3": None}
    assert rig.controller.state.value == "stopped"
    assert {s.state for s in rig.controller.status().values()} == {"stopped"}
    for name, manipulator in rig.manipulators.items():
        move = manipulator.current_move
        assert move is not None and move.status is MoveStatus.INTERRUPTED
        assert_stopped(rig, name)
    stops = [e for e in rig.log.tail(5000) if e["kind"] == "command" and e["message"] == "stop"]
    assert {e["source"] for e in stops} == {"P1", "P2", "P3"}


def test_stop_all_is_never_rate_limited(rig: PanelRig, client: TestClient) -> None:
    answers = [client.post("/api/stop_all").status_code for _ in range(25)]
    assert answers == [200] * 25


def test_stop_all_over_the_websocket(rig: PanelRig, client: TestClient) -> None:
    start_moving(rig, client)
    with client.websocket_connect("ws://127.0.0.1/ws") as socket:
        socket.send_json({"type": "stop_all"})
        for _ in range(50):
            message = socket.receive()
            if "text" in message and '"ack"' in message["text"]:
                break
        else:
            pytest.fail("no acknowledgement of stop_all")
    assert {s.state for s in rig.controller.status().values()} == {"stopped"}
    for name in rig.manipulators:
        assert_stopped(rig, name)


def test_rearm_after_stop(rig: PanelRig, client: TestClient) -> None:
    client.post("/api/stop_all")
    answer = client.post("/api/rearm")
    assert answer.status_code == 200, answer.text
    assert rig.controller.state.value == "idle"
    assert {s.state for s in rig.controller.status().values()} == {"ready"}


def test_pause_and_resume_all(rig: PanelRig, client: TestClient) -> None:
    start_moving(rig, client)
    assert client.post("/api/pause_all").status_code == 200
    assert {s.state for s in rig.controller.status().values()} == {"paused"}
    for name in rig.manipulators:
        assert_stopped(rig, name)
    before = rig.positions()

    assert client.post("/api/resume_all").status_code == 200
    rig.run(0.3)
    assert rig.controller.state.value == "running"
    moved = [n for n, p in before.items() if np.linalg.norm(rig.position(n) - p) > 1.0]
    assert moved, "nothing moved after resume"


def test_take_over_freezes_that_pipette_and_jog_moves_it(rig: PanelRig, client: TestClient) -> None:
    start_moving(rig, client)
    assert client.post("/api/pipettes/P1/take_over").status_code == 200
    assert rig.controller.status()["P1"].manual
    others = {n: rig.position(n) for n in ("P2", "P3")}
    assert_stopped(rig, "P1")
    assert all(np.linalg.norm(rig.position(n) - p) > 1.0 for n, p in others.items())

    before = rig.position("P1")
    answer = client.post(
        "/api/pipettes/P1/jog", json={"axis": "y", "step_um": -7.5, "speed_um_s": 200.0}
    )
    assert answer.status_code == 200, answer.text
    rig.run(0.3)
    step = rig.position("P1") - before
    assert step[1] == pytest.approx(-7.5, abs=0.3)
    assert abs(step[0]) < 0.3 and abs(step[2]) < 0.3


def test_release_resumes_automation(rig: PanelRig, client: TestClient) -> None:
    start_moving(rig, client)
    client.post("/api/pipettes/P1/take_over")
    assert_stopped(rig, "P1")
    before = rig.position("P1")

    answer = client.post("/api/pipettes/P1/release")

    assert answer.status_code == 200, answer.text
    rig.run(0.3)
    assert rig.controller.status()["P1"].state == "moving"
    assert np.linalg.norm(rig.position("P1") - before) > 1.0


def test_release_refused_when_not_manual(rig: PanelRig, client: TestClient) -> None:
    answer = client.post("/api/pipettes/P2/release")
    assert answer.status_code == 409
    assert "release" in answer.json()["error"].lower() or answer.json()["error"]


def test_set_target_in_micrometres_and_by_clicking(rig: PanelRig, client: TestClient) -> None:
    answer = client.post("/api/pipettes/P1/target", json={"x_um": -20, "y_um": -10, "z_um": -40})
    assert answer.status_code == 200, answer.text
    assert "target" in answer.json()["message"]
    assert rig.controller.status()["P1"].target_um == pytest.approx((-20.0, -10.0, -40.0))

    # 256 px frame, 1 µm/px, centred on (0, 0): pixel 147.5 is x = +20 µm; z from the focus.
    rig.imaging.focus_um = -45.0
    rig.frame()
    answer = client.post("/api/pipettes/P3/target", json={"x_px": 147.5, "y_px": 157.5})
    assert answer.status_code == 200, answer.text
    assert rig.controller.status()["P3"].target_um == pytest.approx((20.0, 30.0, -45.0))
    assert all(not moves_since(rig, n, 0) for n in rig.manipulators)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ('{"x_um": 0, "y_um": 0, "z_um": NaN}', 422),
        ('{"x_um": 0, "y_um": 0, "z_um": -Infinity}', 422),
        ({"x_um": 0, "y_um": 0, "z_um": "nan"}, 422),
        ({"x_um": 0, "y_um": 0}, 422),
        ({"x_um": 0, "y_um": 0, "z_um": -40, "x_px": 3, "y_px": 4}, 422),
        ({"x_um": 0, "y_um": 0, "z_um": -40, "speed": 3}, 422),
        ({"x_um": 5000, "y_um": 0, "z_um": -40}, 400),  # outside the field of view
    ],
)
def test_bad_targets_are_refused(
    rig: PanelRig, client: TestClient, body: dict[str, object] | str, status: int
) -> None:
    code, answer = post_json(client, "/api/pipettes/P1/target", body)
    assert code == status, answer
    assert answer["ok"] is False and answer["error"]
    assert rig.controller.status()["P1"].target_um is None


def test_retract_and_home(rig: PanelRig, client: TestClient) -> None:
    start = rig.true_tip("P2")
    assert client.post("/api/pipettes/P2/retract").status_code == 200
    rig.run(1.5)
    assert rig.true_tip("P2")[2] > start[2] + 30.0  # up to the safe height

    answer = client.post("/api/pipettes/P1/home")
    assert answer.status_code == 200, answer.text
    rig.run(3.0)
    home = rig.config.pipette("P1").home_um
    assert home is not None
    assert rig.position("P1")[:3] == pytest.approx(home[:3], abs=2.0)


def test_home_refused_without_a_calibration(make_client: Callable[..., TestClient]) -> None:
    uncalibrated = build_rig(calibrated=False)
    try:
        client = make_client(uncalibrated)
        seq = last_seq(uncalibrated)
        answer = client.post("/api/pipettes/P1/home")
        assert answer.status_code == 400
        assert "not calibrated" in answer.json()["error"]
        uncalibrated.run(0.3)
        assert not moves_since(uncalibrated, "P1", seq)
    finally:
        uncalibrated.close()


def test_recalibrate_runs_in_the_background(rig: PanelRig, client: TestClient) -> None:
    answer = client.post("/api/pipettes/P2/calibrate")
    assert answer.status_code == 200, answer.text
    assert rig.backend.wait_calibration(60.0)
    residual = rig.controller.status()["P2"].calibration_residual_um
    assert residual is not None and residual < 1.0
    assert any(e["kind"] == "calibration" and e["source"] == "P2" for e in rig.log.tail(5000))


def test_recalibrate_refused_while_running(rig: PanelRig, client: TestClient) -> None:
    start_moving(rig, client)
    answer = client.post("/api/pipettes/P2/calibrate")
    assert answer.status_code == 409
    assert "running" in answer.json()["error"]


def test_confirm_calibration_needs_one_waiting(rig: PanelRig, client: TestClient) -> None:
    answer = client.post("/api/pipettes/P1/confirm_calibration")
    assert answer.status_code == 400
    assert "no calibration waiting" in answer.json()["error"]


def test_clear_fault(rig: PanelRig, client: TestClient) -> None:
    rig.manipulators["P1"].inject_fault("link_lost")
    rig.run(0.2)
    assert rig.controller.status()["P1"].state == "fault"
    rig.manipulators["P1"].device.clear_faults()
    answer = client.post("/api/pipettes/P1/clear_fault")
    assert answer.status_code == 200, answer.text
    assert rig.controller.status()["P1"].state == "ready"


def test_unknown_pipette_is_404(rig: PanelRig, client: TestClient) -> None:
    for action in ("take_over", "release", "calibrate", "retract", "home", "clear_fault"):
        answer = client.post(f"/api/pipettes/P9/{action}")
        assert answer.status_code == 404, (action, answer.text)
        assert "P9" in answer.json()["error"]


def test_every_command_and_refusal_is_logged(rig: PanelRig, client: TestClient) -> None:
    client.post("/api/pipettes/P1/take_over")
    client.post("/api/pipettes/P1/jog", json={"axis": "x", "step_um": 1e9, "speed_um_s": 10})
    panel = [e for e in rig.log.tail(5000) if e["source"] == "panel"]
    assert [e["message"] for e in panel][-2:] == ["take_over", "refused jog"]
    assert "step_um" in panel[-1]["reason"]


def test_zones_drawn_while_running_reach_the_controller(rig: PanelRig, client: TestClient) -> None:
    answer = client.post("/api/nogo_zones", json={"center_xy_um": [0, 0], "radius_um": 10})
    assert answer.status_code == 200, answer.text
    (zone,) = rig.controller.config.safety.nogo_zones
    assert zone.center_xy_um == (0.0, 0.0) and zone.radius_um == 10.0
    assert client.delete("/api/nogo_zones").status_code == 200
    assert rig.controller.config.safety.nogo_zones == ()


def test_configured_zones_are_shown(make_client: Callable[..., TestClient]) -> None:
    from patchpilot.config import CylinderZone

    zone = CylinderZone(name="vessel", center_xy_um=(10.0, -20.0), radius_um=12.0)
    zoned = build_rig(rig_config(zones=(zone,)))
    try:
        view = make_client(zoned).get("/api/view").json()
        (shown,) = view["overlay"]["zones"]
        assert shown["center_px"] == pytest.approx([137.5, 107.5])
        assert shown["radius_px"] == pytest.approx(12.0)
    finally:
        zoned.close()


def test_start_approach_refused_without_calibration(
    make_client: Callable[..., TestClient],
) -> None:
    uncalibrated = build_rig(calibrated=False)
    try:
        answer = make_client(uncalibrated).post("/api/start_approach")
        assert answer.status_code == 400
        assert "not calibrated" in answer.json()["error"]
    finally:
        uncalibrated.close()


def test_zones_reach_a_controller_that_takes_them(
    make_client: Callable[..., TestClient],
) -> None:
    """When the controller offers ``set_nogo_zones``, drawn zones reach it in µm."""
    from patchpilot.config import CylinderZone, NoGoZone
    from patchpilot.control import Controller

    class ZoneController(Controller):
        received: list[tuple[NoGoZone, ...]]

        def set_nogo_zones(self, zones: Sequence[NoGoZone]) -> None:
            self.received.append(tuple(zones))

    rig = build_rig()
    controller = ZoneController(rig.config, rig.manipulators, rig.imaging, rig.log, rig.clock)
    controller.received = []
    rig.backend = ControllerBackend(controller, manipulators=rig.manipulators)
    rig.backend.on_frame(*rig.imaging.snap())
    try:
        client = make_client(rig)
        assert client.get("/api/hello").json()["capabilities"]["edit_zones"] is True
        answer = client.post("/api/nogo_zones", json={"center_px": [137.5, 107.5], "radius_px": 12})
        assert answer.status_code == 200, answer.text
        (zone,) = controller.received[-1]
        assert isinstance(zone, CylinderZone)
        assert zone.center_xy_um == pytest.approx((10.0, -20.0))
        assert zone.radius_um == pytest.approx(12.0)
        bad = client.post("/api/nogo_zones", json={"center_px": [1, 2], "radius_px": -3})
        assert bad.status_code == 422
        both = client.post(
            "/api/nogo_zones",
            json={"center_px": [1, 2], "radius_px": 3, "center_xy_um": [0, 0], "radius_um": 3},
        )
        assert both.status_code == 422
        assert client.delete("/api/nogo_zones").status_code == 200
        assert controller.received[-1] == ()
    finally:
        rig.close()
