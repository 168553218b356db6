"""The token, the bound address and the Host check."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from patchpilot.panel import PanelServer, create_app
from patchpilot.panel.guard import (
    TOKEN_HEADER,
    JogRateLimiter,
    is_cross_origin,
    is_loopback,
    new_token,
    token_matches,
)
from tests.panel.conftest import assert_still, last_seq, moves_since
from tests.panel.rig import PanelRig

TOKEN = "s3cret-token-for-tests"


@pytest.fixture
def guarded(rig: PanelRig, make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(rig, token=TOKEN, bind_host="0.0.0.0")


def test_binding_beyond_loopback_requires_a_token(rig: PanelRig) -> None:
    with pytest.raises(ValueError, match="requires a token"):
        create_app(rig.backend, bind_host="0.0.0.0")
    with pytest.raises(ValueError, match="requires a token"):
        create_app(rig.backend, bind_host="192.168.1.20", token="")
    create_app(rig.backend, bind_host="127.0.0.1")
    create_app(rig.backend, bind_host="::1")


@pytest.mark.parametrize(
    "path",
    [
        "/api/start_approach",
        "/api/pause_all",
        "/api/resume_all",
        "/api/rearm",
        "/api/stop_all",
        "/api/pipettes/P1/take_over",
        "/api/pipettes/P1/release",
        "/api/pipettes/P1/calibrate",
        "/api/pipettes/P1/retract",
        "/api/pipettes/P1/home",
        "/api/pipettes/P1/clear_fault",
        "/api/pipettes/P1/confirm_calibration",
        "/api/nogo_zones",
    ],
)
def test_every_command_needs_the_token(rig: PanelRig, guarded: TestClient, path: str) -> None:
    seq = last_seq(rig)
    states = {n: s.state for n, s in rig.controller.status().items()}
    for headers in ({}, {TOKEN_HEADER: "wrong"}, {TOKEN_HEADER: TOKEN + "x"}):
        answer = guarded.post(path, headers=headers)
        assert answer.status_code == 401, (path, headers, answer.text)
        assert answer.json()["error"] == "missing or wrong token"
    assert {n: s.state for n, s in rig.controller.status().items()} == states
    assert all(not moves_since(rig, n, seq) for n in rig.manipulators)


def test_jog_and_target_need_the_token(rig: PanelRig, guarded: TestClient) -> None:
    guarded.post("/api/pipettes/P1/take_over", headers={TOKEN_HEADER: TOKEN})
    rig.run(0.1)
    before = rig.position("P1")
    jog = {"axis": "x", "step_um": 5.0, "speed_um_s": 50.0}
    assert guarded.post("/api/pipettes/P1/jog", json=jog).status_code == 401
    target = {"x_um": 0.0, "y_um": 0.0, "z_um": -40.0}
    assert guarded.post("/api/pipettes/P1/target", json=target).status_code == 401
    assert_still(rig, "P1", before)
    assert rig.controller.status()["P1"].target_um is None

    answer = guarded.post("/api/pipettes/P1/jog", json=jog, headers={TOKEN_HEADER: TOKEN})
    assert answer.status_code == 200, answer.text


def test_the_token_works_in_the_header_or_the_query(rig: PanelRig, guarded: TestClient) -> None:
    assert guarded.post("/api/stop_all", headers={TOKEN_HEADER: TOKEN}).status_code == 200
    assert guarded.post(f"/api/rearm?token={TOKEN}").status_code == 200
    assert guarded.get("/api/view").status_code == 401
    assert guarded.get(f"/api/view?token={TOKEN}").status_code == 200
    assert guarded.get("/").status_code == 200  # the page itself holds no secret


def test_websocket_needs_the_token(guarded: TestClient) -> None:
    with (
        pytest.raises((WebSocketDisconnect, WebSocketDenialResponse)),
        guarded.websocket_connect("ws://127.0.0.1/ws") as socket,
    ):
        socket.receive_json()
    with guarded.websocket_connect(f"ws://127.0.0.1/ws?token={TOKEN}") as socket:
        assert socket.receive_json()["type"] == "hello"


def test_loopback_panel_refuses_foreign_host_headers(client: TestClient) -> None:
    """A web page reaching 127.0.0.1 through DNS rebinding sends its own name as Host."""
    answer = client.post("/api/stop_all", headers={"host": "evil.example"})
    assert answer.status_code == 400
    assert client.post("/api/stop_all", headers={"host": "localhost:8765"}).status_code == 200


def test_server_without_a_token_on_loopback(rig: PanelRig) -> None:
    with PanelServer(rig.backend, host="127.0.0.1", port=0) as local:
        assert local.token is None
        assert local.url == f"http://127.0.0.1:{local.port}/"
        assert httpx.get(local.base_url + "/api/hello", timeout=5.0).status_code == 200


def test_server_on_another_address_generates_a_token(
    rig: PanelRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pretend 127.0.0.1 is a network address rather than really listen on one.
    monkeypatch.setattr("patchpilot.panel.server.is_loopback", lambda host: False)
    with PanelServer(rig.backend, host="127.0.0.1", port=0) as server:
        assert server.token is not None and len(server.token) >= 32
        assert server.url.endswith(f"/?token={server.token}")
        hello = server.base_url + "/api/hello"
        assert httpx.get(hello, timeout=5.0).status_code == 401
        answer = httpx.get(hello, headers={TOKEN_HEADER: server.token}, timeout=5.0)
        assert answer.status_code == 200
        assert answer.json()["token_required"] is True


def test_guard_helpers() -> None:
    assert len(new_token()) >= 32 and new_token() != new_token()
    assert token_matches(None, None) and token_matches("a", "a")
    assert not token_matches("a", None) and not token_matches("a", "b")
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")
    assert not is_loopback("rig.example")
    with pytest.raises(ValueError, match="positive"):
        JogRateLimiter(0.0)
    with pytest.raises(ValueError, match="positive"):
        JogRateLimiter(float("nan"))


def test_commands_from_another_sites_page_are_refused(rig: PanelRig, client: TestClient) -> None:
    """A page on another site can POST to 127.0.0.1 (CSRF); its Origin gives it away."""
    seq = last_seq(rig)
    foreign = {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}
    for path in ("/api/start_approach", "/api/pipettes/P1/take_over", "/api/rearm"):
        answer = client.post(path, headers=foreign)
        assert answer.status_code == 403, answer.text
    assert client.post("/api/pipettes/P1/home", headers={"origin": "null"}).status_code == 403
    other_port = {"origin": "http://127.0.0.1:9999"}
    assert client.post("/api/pipettes/P1/retract", headers=other_port).status_code == 403
    assert all(s.state == "ready" for s in rig.controller.status().values())
    assert all(not moves_since(rig, n, seq) for n in rig.manipulators)

    assert client.post("/api/stop_all", headers=foreign).status_code == 200  # always allowed
    client.post("/api/rearm")
    same = {"origin": "http://127.0.0.1", "sec-fetch-site": "same-origin"}
    assert client.post("/api/pipettes/P1/take_over", headers=same).status_code == 200


def test_websocket_from_another_site_is_refused(client: TestClient) -> None:
    with (
        pytest.raises((WebSocketDisconnect, WebSocketDenialResponse)),
        client.websocket_connect(
            "ws://127.0.0.1/ws", headers={"origin": "https://evil.example"}
        ) as socket,
    ):
        socket.receive_json()
    with client.websocket_connect(
        "ws://127.0.0.1/ws", headers={"origin": "http://127.0.0.1"}
    ) as socket:
        assert socket.receive_json()["type"] == "hello"


def test_cross_origin_rules() -> None:
    assert not is_cross_origin({"host": "127.0.0.1:8765"})  # curl
    assert not is_cross_origin({"host": "127.0.0.1:8765", "origin": "http://127.0.0.1:8765"})
    assert is_cross_origin({"host": "127.0.0.1:8765", "origin": "http://localhost:8765"})
    assert is_cross_origin({"host": "127.0.0.1:8765", "sec-fetch-site": "same-site"})
    assert not is_cross_origin({"host": "a", "sec-fetch-site": "none"})
