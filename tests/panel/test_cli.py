"""``patchpilot panel``: a simulated experiment served for a few seconds, and its errors."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from patchpilot.cli._panel import panel
from patchpilot.events import read_events
from patchpilot.experiment import Experiment
from tests.panel.rig import rig_config

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(panel)
    return app


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _NoTips:
    """A localiser double that finds nothing (no trained weights ship yet)."""

    last_latency_ms = 0.0

    def localise(self, image: Any, pixel_size_um: float) -> list[Any]:
        return []


def test_serves_a_simulated_rig_and_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Experiment, "_load_localiser", lambda self: _NoTips())
    rig_file = tmp_path / "rig.yaml"
    rig_file.write_text(rig_config(2).to_yaml())
    port = _free_port()
    seen: dict[str, Any] = {}

    def use_the_panel() -> None:
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:
            try:
                hello = httpx.get(f"http://127.0.0.1:{port}/api/hello", timeout=1.0)
                seen["hello"] = hello.json()
                seen["stop"] = httpx.post(f"http://127.0.0.1:{port}/api/stop_all", timeout=5.0)
                return
            except httpx.HTTPError:
                time.sleep(0.1)

    user = threading.Thread(target=use_the_panel)
    user.start()
    result = runner.invoke(
        _app(),
        [
            *("--config", str(rig_file), "--port", str(port)),
            *("--out", str(tmp_path / "out"), "--seconds", "4"),
        ],
    )
    user.join(25.0)

    assert result.exit_code == 0, result.output
    assert f"http://127.0.0.1:{port}/" in result.output
    assert seen["hello"]["rig"] == "panel-test"
    assert seen["stop"].status_code == 200
    events = list(read_events(tmp_path / "out" / "events.jsonl"))
    assert any(e["source"] == "panel" and e["message"] == "stop all" for e in events)
    assert any(e["source"] == "experiment" and e["message"] == "closed" for e in events)


def test_bad_rig_file(tmp_path: Path) -> None:
    rig_file = tmp_path / "rig.yaml"
    rig_file.write_text("pipettes: []\n")
    result = runner.invoke(_app(), ["--config", str(rig_file)])
    assert result.exit_code == 2
    assert "pipettes" in result.output


def test_port_in_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Experiment, "_load_localiser", lambda self: _NoTips())
    rig_file = tmp_path / "rig.yaml"
    rig_file.write_text(rig_config(1).to_yaml())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = runner.invoke(
            _app(), ["--config", str(rig_file), "--port", str(port), "--out", str(tmp_path)]
        )
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.output


def test_observe_only_refuses_calibrate(tmp_path: Path) -> None:
    rig_file = tmp_path / "rig.yaml"
    rig_file.write_text(rig_config(1).to_yaml())
    result = runner.invoke(_app(), ["--config", str(rig_file), "--observe-only", "--calibrate"])
    assert result.exit_code == 2
    assert "never moves" in result.output


def test_registered_in_the_patchpilot_command() -> None:
    from patchpilot.cli import app

    result = runner.invoke(app, ["panel", "--help"])
    assert result.exit_code == 0, result.output
    assert "--config" in result.output and "STOP ALL" in result.output
