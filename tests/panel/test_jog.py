"""Jogging from the panel: what moves, and every refusal (nothing moves then)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.panel.conftest import FakeSeconds, assert_still, last_seq, moves_since
from tests.panel.rig import PanelRig, build_rig, rig_config
from tests.panel.test_commands import post_json

JOG = "/api/pipettes/P1/jog"


@pytest.fixture
def manual(rig: PanelRig, client: TestClient) -> PanelRig:
    assert client.post("/api/pipettes/P1/take_over").status_code == 200
    return rig


@pytest.mark.parametrize(("axis", "index"), [("x", 0), ("y", 1), ("z", 2)])
def test_jog_moves_only_its_axis(
    manual: PanelRig, client: TestClient, axis: str, index: int
) -> None:
    before = manual.position("P1")
    answer = client.post(JOG, json={"axis": axis, "step_um": 4.0, "speed_um_s": 100.0})
    assert answer.status_code == 200, answer.text
    manual.run(0.4)
    step = manual.position("P1") - before
    assert step[index] == pytest.approx(4.0, abs=0.3)
    assert sum(abs(v) for i, v in enumerate(step) if i != index) < 0.4


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ('{"axis": "x", "step_um": NaN, "speed_um_s": 50}', 422, "finite"),
        ('{"axis": "x", "step_um": Infinity, "speed_um_s": 50}', 422, "finite"),
        ({"axis": "x", "step_um": "nan", "speed_um_s": 50}, 422, "finite"),
        ('{"axis": "x", "step_um": 5, "speed_um_s": NaN}', 422, "finite"),
        ({"axis": "x", "step_um": 600, "speed_um_s": 50}, 422, "500"),
        ({"axis": "x", "step_um": 0, "speed_um_s": 50}, 422, "zero"),
        ({"axis": "x", "step_um": 5, "speed_um_s": 0}, 422, "greater than 0"),
        ({"axis": "x", "step_um": 5, "speed_um_s": -10}, 422, "greater than 0"),
        ({"axis": "x", "step_um": 5, "speed_um_s": 5000}, 400, "speed"),  # above 1000 µm/s
        ({"axis": "w", "step_um": 5, "speed_um_s": 50}, 422, "axis"),
        ({"axis": 0, "step_um": 5, "speed_um_s": 50}, 422, "axis"),
        ({"axis": "x", "step_um": 5}, 422, "speed_um_s"),
        ({"axis": "x", "step_um": 5, "speed_um_s": 50, "force": True}, 422, "force"),
        ("not json", 422, "json"),
    ],
)
def test_bad_jogs_are_refused_and_nothing_moves(
    manual: PanelRig,
    client: TestClient,
    body: dict[str, object] | str,
    status: int,
    words: str,
) -> None:
    before = manual.position("P1")
    seq = last_seq(manual)
    code, answer = post_json(client, JOG, body)
    assert code == status, answer
    assert answer["ok"] is False
    assert words in answer["error"].lower()
    assert_still(manual, "P1", before)
    assert not moves_since(manual, "P1", seq)


def test_jog_outside_the_soft_limits_is_refused(make_client: Callable[..., TestClient]) -> None:
    tight = build_rig(rig_config(soft_max_um=10010.0))  # the devices start at 10000 µm
    try:
        client = make_client(tight)
        client.post("/api/pipettes/P2/take_over")
        tight.run(0.1)
        before = tight.position("P2")
        seq = last_seq(tight)
        answer = client.post(
            "/api/pipettes/P2/jog", json={"axis": "z", "step_um": 20.0, "speed_um_s": 50.0}
        )
        assert answer.status_code == 400, answer.text
        assert "soft" in answer.json()["error"] and "limit" in answer.json()["error"]
        assert_still(tight, "P2", before)
        assert not moves_since(tight, "P2", seq)
    finally:
        tight.close()


def test_jog_refused_unless_under_manual_control(rig: PanelRig, client: TestClient) -> None:
    before = rig.position("P2")
    seq = last_seq(rig)
    answer = client.post(
        "/api/pipettes/P2/jog", json={"axis": "x", "step_um": 5.0, "speed_um_s": 50.0}
    )
    assert answer.status_code == 400
    assert "take it over" in answer.json()["error"]
    assert_still(rig, "P2", before)
    assert not moves_since(rig, "P2", seq)


def test_jog_of_an_unknown_pipette(rig: PanelRig, client: TestClient) -> None:
    answer = client.post(
        "/api/pipettes/P7/jog", json={"axis": "x", "step_um": 5.0, "speed_um_s": 50.0}
    )
    assert answer.status_code == 404
    assert "P7" in answer.json()["error"]


def test_jog_along_the_pipette_axis(manual: PanelRig, client: TestClient) -> None:
    """P1 (three axes, calibrated) advances along its own axis through the calibration."""
    before = manual.true_tip("P1")
    answer = client.post(JOG, json={"axis": "pipette", "step_um": 5.0, "speed_um_s": 50.0})
    assert answer.status_code == 200, answer.text
    manual.run(0.4)
    moved = manual.true_tip("P1") - before
    axis = manual.controller.units["P1"].geometry.axis
    assert float(moved @ axis) == pytest.approx(5.0, abs=1.5)  # backlash, calibration error
    assert float(np.linalg.norm(moved - (moved @ axis) * axis)) < 1.5


def test_jogs_are_rate_limited_per_pipette(
    manual: PanelRig, client: TestClient, rate_clock: FakeSeconds
) -> None:
    body = {"axis": "x", "step_um": 0.5, "speed_um_s": 100.0}
    answers = [client.post(JOG, json=body).status_code for _ in range(7)]
    assert answers == [200] * 5 + [429] * 2  # panel.max_jogs_per_s = 5
    manual.run(0.2)
    moved = manual.position("P1")

    client.post("/api/pipettes/P2/take_over")
    other = client.post("/api/pipettes/P2/jog", json=body)
    assert other.status_code == 200, "the limit is per pipette"

    refused = client.post(JOG, json=body)
    assert refused.status_code == 429
    assert "jogs per second" in refused.json()["error"]
    assert_still(manual, "P1", moved)

    rate_clock.now += 1.01
    assert client.post(JOG, json=body).status_code == 200
    assert client.post("/api/stop_all").status_code == 200  # never limited
