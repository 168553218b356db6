"""The rig configuration: examples load, and every kind of bad input gives one clear message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from patchpilot.config import ConfigError, RigConfig, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", ["sim-4.yaml", "sensapex-2.yaml", "scientifica-2.yaml"])
def test_examples_load(name: str) -> None:
    config = load_config(CONFIGS / name)
    assert len(config.pipettes) >= 2
    assert config.microscope.pixel_size_um > 0


def test_sim4_is_four_simulated_pipettes() -> None:
    config = load_config(CONFIGS / "sim-4.yaml")
    assert [p.driver.kind for p in config.pipettes] == ["simulated"] * 4
    assert config.is_simulated
    assert config.pipette("P3").yaw_deg == 225


def test_round_trip_yaml(tmp_path: Path) -> None:
    config = load_config(CONFIGS / "sim-4.yaml")
    path = tmp_path / "again.yaml"
    path.write_text(config.to_yaml())
    assert load_config(path) == config


def _write_variant(tmp_path: Path, edit: object) -> Path:
    data = yaml.safe_load((CONFIGS / "sim-4.yaml").read_text())
    assert callable(edit)
    edit(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _set(path: list[object], value: object):  # type: ignore[no-untyped-def]
    def edit(data: dict) -> None:  # type: ignore[type-arg]
        node = data
        for key in path[:-1]:
            node = node[key]  # type: ignore[index]
        node[path[-1]] = value  # type: ignore[index]

    return edit


def _delete(path: list[object]):  # type: ignore[no-untyped-def]
    def edit(data: dict) -> None:  # type: ignore[type-arg]
        node = data
        for key in path[:-1]:
            node = node[key]  # type: ignore[index]
        del node[path[-1]]  # type: ignore[arg-type]

    return edit


BAD_CASES = {
    "wrong type": (
        _set(["microscope", "pixel_size_um"], "one"),
        ["microscope.pixel_size_um", "valid number", "'one'"],
    ),
    "missing field": (
        _delete(["pipettes", 1, "pitch_deg"]),
        ["pipettes[1] (P2).pitch_deg", "missing"],
    ),
    "pitch out of range": (
        _set(["pipettes", 0, "pitch_deg"], 95),
        ["pipettes[0] (P1).pitch_deg", "less than or equal to 60"],
    ),
    "duplicate name": (_set(["pipettes", 2, "name"], "P1"), ["duplicate pipette name", "P1"]),
    "limits inverted": (
        _set(["pipettes", 3, "soft_limits"], {"min_um": [0, 500, 0], "max_um": [100, 200, 100]}),
        ["pipettes[3] (P4).soft_limits", "limits inverted on axis 1"],
    ),
    "misspelt key": (
        _set(["safety", "min_clearence_um"], 5),
        ["safety.min_clearence_um", "unknown"],
    ),
    "unknown driver": (
        _set(["pipettes", 0, "driver"], {"kind": "luigs"}),
        ["pipettes[0] (P1).driver", "luigs"],
    ),
    "NaN": (
        _set(["safety", "max_single_correction_um"], float("nan")),
        ["max_single_correction_um", "finite"],
    ),
    "slow faster than fast": (
        _set(["pipettes", 0, "slow_speed_um_s"], 5000),
        ["pipettes[0] (P1)", "slow_speed_um_s 5000"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_message(tmp_path: Path, case: str) -> None:
    edit, expected = BAD_CASES[case]
    path = _write_variant(tmp_path, edit)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "\n" not in message and "Traceback" not in message


def test_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("pipettes: [\n  name: P1\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML at line"):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


def test_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path)


def test_shared_device_refused() -> None:
    data = yaml.safe_load((CONFIGS / "sensapex-2.yaml").read_text())
    data["pipettes"][1]["driver"]["device_id"] = 1
    with pytest.raises(ValueError, match="share one device: sensapex device 1"):
        RigConfig.model_validate(data)


def test_config_is_frozen() -> None:
    config = load_config(CONFIGS / "sim-4.yaml")
    with pytest.raises(ValueError, match="frozen"):
        config.name = "other"  # type: ignore[misc]


def test_cli_config_check(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "patchpilot", "config", "check", str(CONFIGS / "sim-4.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "P4: simulated" in ok.stdout
    path = _write_variant(tmp_path, _set(["pipettes", 0, "pitch_deg"], 95))
    bad = subprocess.run(
        [sys.executable, "-m", "patchpilot", "config", "check", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "pitch_deg" in bad.stderr and "Traceback" not in bad.stderr


def test_focus_is_checked_against_the_travel() -> None:
    from patchpilot.config import checked_focus_um

    assert checked_focus_um(12, (-400.0, 400.0)) == 12.0
    for bad in (float("nan"), float("inf"), -400.5, 401.0):
        with pytest.raises(ValueError, match=r"within \[-400, 400\] µm"):
            checked_focus_um(bad, (-400.0, 400.0))
