"""Fixtures for the panel's API tests: a simulated rig (``rig.py``) and a test client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from patchpilot.panel import create_app
from tests.panel.rig import PanelRig, build_rig


class FakeSeconds:
    """A settable monotonic clock for the jog rate limit."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rig() -> Iterator[PanelRig]:
    built = build_rig()
    yield built
    built.close()


@pytest.fixture
def rate_clock() -> FakeSeconds:
    return FakeSeconds()


@pytest.fixture
def make_client(
    rate_clock: FakeSeconds,
) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(rig: PanelRig, **options: Any) -> TestClient:
        options.setdefault("rate_clock", rate_clock)
        client = TestClient(create_app(rig.backend, **options), base_url="http://127.0.0.1")
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(rig: PanelRig, make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(rig)


def moves_since(rig: PanelRig, name: str, seq: int) -> list[dict[str, Any]]:
    """Move commands sent to ``name``'s manipulator after log record ``seq``."""
    return [
        e
        for e in rig.log.tail(5000)
        if e["seq"] > seq
        and e["source"] == name
        and e["kind"] == "command"
        and e["message"] == "move"
    ]


def last_seq(rig: PanelRig) -> int:
    tail = rig.log.tail(1)
    return int(tail[-1]["seq"]) if tail else 0


def assert_still(
    rig: PanelRig, name: str, before: np.ndarray[Any, Any], seconds: float = 0.3
) -> None:
    """``name`` does not move while ``seconds`` of simulated time pass (readout noise aside)."""
    rig.run(seconds)
    after = rig.position(name)
    assert np.max(np.abs(after - before)) < 0.2, f"{name} moved from {before} to {after}"


def assert_stopped(rig: PanelRig, name: str) -> None:
    """``name`` has come to rest (after its deceleration) and stays there."""
    rig.run(0.1)
    move = rig.manipulators[name].current_move
    assert move is None or move.is_done
    assert not rig.manipulators[name].is_busy()
    assert_still(rig, name, rig.position(name))
