"""``patchpilot hw list`` / ``hw probe`` against simulated, pty-Scientifica and Sensapex rigs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from patchpilot.cli._hw import hw_app
from patchpilot.hardware.scientifica.simulator import ScientificaSimulator, running_simulator
from patchpilot.hardware.sensapex_sim import SimulatedLibum, SimulatedUmp, simulated_ump

runner = CliRunner()


def _rig(tmp_path: Path, drivers: dict[str, dict[str, object]]) -> Path:
    pipettes = [
        {
            "name": name,
            "pitch_deg": 30,
            "yaw_deg": 0,
            "soft_limits": {"min_um": [-20000] * 3, "max_um": [20000] * 3},
            "driver": driver,
        }
        for name, driver in drivers.items()
    ]
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump({"name": "test", "pipettes": pipettes}), encoding="utf-8")
    return path


@pytest.fixture
def controller() -> Iterator[ScientificaSimulator]:
    with running_simulator(version=2, baudrate=9600, position_um=(12.5, -3.0, 40.0)) as sim:
        yield sim


def test_list_the_simulated_rig() -> None:
    result = runner.invoke(hw_app, ["list", "--config", "configs/sim-4.yaml"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 4
    assert lines[3].startswith("P4: simulated 4-axis -- simulated uMp-4, 4 axes, at (")


def test_probe_a_scientifica_on_a_pty(tmp_path: Path, controller: ScientificaSimulator) -> None:
    config = _rig(tmp_path, {"PS1": {"kind": "scientifica", "port": controller.port}})
    result = runner.invoke(hw_app, ["probe", "PS1", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "model     Scientifica PatchStar" in result.output
    assert "firmware  PATCHSTAR 2.9" in result.output
    assert "position  (12.50, -3.00, 40.00) µm" in result.output


def test_list_reports_who_answers_and_fails(
    tmp_path: Path, controller: ScientificaSimulator
) -> None:
    config = _rig(
        tmp_path,
        {
            "PS1": {"kind": "scientifica", "port": controller.port},
            "PS2": {"kind": "scientifica", "port": str(tmp_path / "no-such-port")},
        },
    )
    result = runner.invoke(hw_app, ["list", "--config", str(config)])
    assert result.exit_code == 2
    assert "PS1: scientifica on" in result.output and "PatchStar, 3 axes" in result.output
    assert (
        "PS2: scientifica on" in result.output
        and "NOT ANSWERING: PS2: cannot open" in result.output
    )
    assert "1 of 2 manipulators did not answer" in result.stderr


def test_probe_a_sensapex_that_is_not_there(tmp_path: Path) -> None:
    config = _rig(tmp_path, {"left": {"kind": "sensapex", "device_id": 3}})
    with simulated_ump(SimulatedLibum([SimulatedUmp(1), SimulatedUmp(2)])):
        result = runner.invoke(hw_app, ["probe", "left", "--config", str(config)])
        found = runner.invoke(hw_app, ["probe", "left", "--config", str(_with_id(config, 2))])
    assert result.exit_code == 2
    assert "no Sensapex device 3 answered" in result.stderr and "found: [1, 2]" in result.stderr
    assert "hint: is the uMp powered" in result.stderr
    assert found.exit_code == 0, found.output
    assert "model     Sensapex uMp-3" in found.output


def _with_id(config: Path, device_id: int) -> Path:
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["pipettes"][0]["driver"]["device_id"] = device_id
    path = config.with_name(f"rig{device_id}.yaml")
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["probe", "P9", "--config", "configs/sim-4.yaml"], "no pipette 'P9'; known: P1, P2"),
        (["list", "--config", "does-not-exist.yaml"], "file not found"),
    ],
)
def test_bad_input_exits_2_with_one_message(args: list[str], message: str) -> None:
    result = runner.invoke(hw_app, args)
    assert result.exit_code == 2
    assert message in result.stderr
