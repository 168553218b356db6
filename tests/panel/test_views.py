"""What the page is shown: frames, overlays in pixels, cards, events, the live websocket."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from patchpilot.panel import ControllerBackend
from patchpilot.panel.views import encode_frame, jsonable
from tests.panel.rig import PanelRig, build_rig, rig_config


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_encode_frame_stretches_contrast() -> None:
    image = np.tile(np.linspace(1000, 1400, 64, dtype=np.float32), (48, 1)).astype(np.uint16)
    pixels = decode(encode_frame(image))
    assert pixels.shape == (48, 64)
    assert pixels[:, :3].mean() < 15 and pixels[:, -3:].mean() > 240


def test_encode_frame_odd_inputs() -> None:
    assert decode(encode_frame(np.full((16, 16), 7, np.uint16))).shape == (16, 16)
    with_nan = np.ones((16, 16), np.float32)
    with_nan[3, 4] = np.nan
    assert decode(encode_frame(with_nan)).shape == (16, 16)
    assert max(decode(encode_frame(np.zeros((2048, 1500), np.uint16))).shape) <= 1024
    with pytest.raises(ValueError, match="2-D"):
        encode_frame(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="2-D"):
        encode_frame(np.zeros((0, 4)))


def test_jsonable_has_no_nan() -> None:
    value = jsonable({"a": math.nan, "b": (1.0, math.inf), "c": np.float32(2.5)})
    assert value == {"a": None, "b": [1.0, None], "c": 2.5}
    json.dumps(value, allow_nan=False)


def test_view_shows_tips_targets_and_plans(rig: PanelRig, client: TestClient) -> None:
    rig.controller.set_target("P1", (-20.0, -10.0, -40.0))
    assert client.post("/api/start_approach").status_code == 200
    rig.run(0.1)
    view = client.get("/api/view").json()

    assert view["coordinator"] == "running"
    assert [p["name"] for p in view["pipettes"]] == ["P1", "P2", "P3"]
    overlays = {p["name"]: p for p in view["overlay"]["pipettes"]}
    for name, overlay in overlays.items():
        truth = rig.true_tip(name)
        expected_px = [truth[0] + 127.5, truth[1] + 127.5]  # 1 µm/px, centred on (0, 0)
        assert overlay["predicted_px"] == pytest.approx(expected_px, abs=3.0)
    assert overlays["P1"]["target_px"] == pytest.approx([107.5, 117.5])
    assert len(overlays["P1"]["path_px"]) >= 3
    assert overlays["P2"]["target_px"] is None and overlays["P2"]["path_px"] == []
    found = view["overlay"]["found"]
    assert len(found) == len(rig.backend.latest_frame().detections)  # type: ignore[union-attr]
    card = view["pipettes"][0]
    assert card["state"] == "moving" and card["target_um"] == [-20.0, -10.0, -40.0]
    assert card["distance_to_target_um"] > 50.0
    assert view["frame"]["index"] == rig.backend.latest_frame().frame.index  # type: ignore[union-attr]


@pytest.mark.parametrize(("half_gap_um", "violation"), [(12.0, False), (4.0, True)])
def test_clearance_warnings(
    make_client: Callable[..., TestClient], half_gap_um: float, violation: bool
) -> None:
    near = build_rig(
        rig_config(2, origins_um={"P1": (-half_gap_um, 0.0, 60.0), "P2": (half_gap_um, 0.0, 60.0)})
    )
    try:
        (warning,) = make_client(near).get("/api/view").json()["overlay"]["clearance"]
        assert (warning["first"], warning["second"]) == ("P1", "P2")
        assert warning["gap_um"] < 2.0 * half_gap_um
        assert warning["is_violation"] is violation
    finally:
        near.close()


def test_no_clearance_warning_when_far_apart(client: TestClient) -> None:
    assert client.get("/api/view").json()["overlay"]["clearance"] == []


def test_events_leave_out_per_frame_records(rig: PanelRig, client: TestClient) -> None:
    rig.log.record("localisation", "acquisition", "2 tip(s)")
    client.post("/api/pipettes/P2/take_over")
    events = client.get("/api/events?n=50").json()["events"]
    assert events and all(e["kind"] not in ("localisation", "frame") for e in events)
    assert events[-1]["source"] == "panel" and events[-1]["message"] == "take_over"


def test_frame_jpeg(rig: PanelRig, client: TestClient) -> None:
    answer = client.get("/api/frame.jpg")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    assert decode(answer.content).shape == (256, 256)


def test_no_frame_yet(make_client: Callable[..., TestClient]) -> None:
    rig = build_rig()
    rig.backend = ControllerBackend(rig.controller)  # has seen no frame
    try:
        client = make_client(rig)
        assert client.get("/api/frame.jpg").status_code == 404
        view = client.get("/api/view").json()
        assert view["frame"] is None and view["overlay"]["found"] == []
        assert view["stats"]["frame_rate_hz"] is None
        answer = client.post("/api/pipettes/P1/target", json={"x_px": 10, "y_px": 10})
        assert answer.status_code == 409 and "z_um" in answer.json()["error"]
    finally:
        rig.close()


def test_stats_are_finite_or_null(rig: PanelRig) -> None:
    backend = ControllerBackend(
        rig.controller, extra_stats=lambda: {"localiser_latency_ms": math.nan}
    )
    assert backend.stats().localiser_latency_ms is None
    backend = ControllerBackend(rig.controller, extra_stats=lambda: {"localiser_latency_ms": 12.5})
    assert backend.stats().localiser_latency_ms == 12.5


def test_websocket_streams_views_frames_and_events(rig: PanelRig, client: TestClient) -> None:
    with client.websocket_connect("ws://127.0.0.1/ws") as socket:
        hello = socket.receive_json()
        assert hello["type"] == "hello" and [p["name"] for p in hello["pipettes"]] == [
            "P1",
            "P2",
            "P3",
        ]
        assert hello["pipettes"][2]["n_axes"] == 4
        assert hello["capabilities"] == {"jog_along_axis": True, "edit_zones": True}
        initial = socket.receive_json()
        assert initial["type"] == "events" and initial["initial"] is True
        kinds: list[str] = []
        frames = 0
        client.post("/api/pipettes/P3/take_over")
        rig.frame()
        seen_command = False
        for _ in range(40):
            message = socket.receive()
            if message.get("bytes"):
                frames += 1
                assert decode(message["bytes"]).shape == (256, 256)
                continue
            data = json.loads(message["text"])
            kinds.append(data["type"])
            if data["type"] == "events":
                seen_command |= any(e["message"] == "take_over" for e in data["events"])
            if frames >= 1 and seen_command and kinds.count("view") >= 3:
                break
        assert kinds.count("view") >= 3 and frames >= 1 and seen_command
        socket.send_json({"type": "ping", "t": 5})
        socket.send_json({"type": "jog"})
        replies: list[dict[str, Any]] = []
        while len(replies) < 2:
            data = json.loads(socket.receive().get("text") or "{}")
            if data.get("type") in ("pong", "error"):
                replies.append(data)
        assert replies[0] == {"type": "pong", "t": 5}
        assert "use HTTP" in replies[1]["error"]


def test_page_and_static_files(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and 'id="stop-all"' in page.text
    assert 'id="confirm-modal"' in page.text
    script = client.get("/static/panel.js")
    assert script.status_code == 200 and "stopAll" in script.text
    assert client.get("/static/panel.css").status_code == 200
