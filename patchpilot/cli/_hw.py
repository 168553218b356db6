"""``patchpilot hw``: which manipulators are configured and do they answer.

``hw list`` opens every configured manipulator, identifies it and reads its position;
``hw probe NAME`` does the same for one, in more detail. Exit code 2 when the configuration is
bad or a device does not answer, with one message saying what to check.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from patchpilot.cli._common import load_rig
from patchpilot.config import PipetteConfig

if TYPE_CHECKING:
    from patchpilot.hardware import DeviceInfo

hw_app = typer.Typer(help="Manipulators: list what is configured, probe one.", no_args_is_help=True)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Rig configuration (YAML).", exists=False)
]


def _address(pipette: PipetteConfig) -> str:
    driver = pipette.driver
    if driver.kind == "sensapex":
        return f"sensapex device {driver.device_id} @ {driver.address} group {driver.group}"
    if driver.kind == "scientifica":
        rate = driver.baudrate or "auto"
        return f"scientifica on {driver.port} (baud {rate})"
    return f"simulated {driver.n_axes}-axis"


def _probe(pipette: PipetteConfig, seed: int | None) -> tuple[DeviceInfo, tuple[float, ...]]:
    """Open, identify, read the position, close.

    Raises
    ------
    ManipulatorError
        The device could not be opened or did not answer.
    """
    from patchpilot.clock import RealClock
    from patchpilot.events import EventLog
    from patchpilot.hardware import create_manipulator

    manipulator = create_manipulator(pipette, log=EventLog(), clock=RealClock(), rng_seed=seed)
    try:
        return manipulator.identify(), manipulator.position_um()
    finally:
        manipulator.close()


def _hint(pipette: PipetteConfig) -> str:
    kind = pipette.driver.kind
    if kind == "sensapex":
        return "is the uMp powered, on the 169.254.x.x link, with this device id and group?"
    if kind == "scientifica":
        return "is the controller on, the port right, and LinLab closed?"
    return "check the simulated driver settings"


def _format_position(position_um: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in position_um) + ") µm"


@hw_app.command("list")
def list_devices(config: ConfigOption) -> None:
    """Every configured manipulator, whether it answers, and where it is."""
    from patchpilot.hardware import ManipulatorError

    rig = load_rig(config)
    failures = 0
    for pipette in rig.pipettes:
        label = f"{pipette.name}: {_address(pipette)}"
        try:
            info, position = _probe(pipette, rig.simulation_seed)
        except (ManipulatorError, ValueError) as exc:
            failures += 1
            typer.echo(f"{label} -- NOT ANSWERING: {exc}")
            continue
        typer.echo(f"{label} -- {info.model}, {info.n_axes} axes, at {_format_position(position)}")
    if failures:
        typer.echo(
            f"error: {failures} of {len(rig.pipettes)} manipulators did not answer", err=True
        )
        raise typer.Exit(2)


@hw_app.command("probe")
def probe(
    name: Annotated[str, typer.Argument(help="The pipette's name in the configuration.")],
    config: ConfigOption,
) -> None:
    """Identify one manipulator and read its position."""
    from patchpilot.hardware import ManipulatorError

    rig = load_rig(config)
    try:
        pipette = rig.pipette(name)
    except KeyError as exc:
        typer.echo(f"error: {exc.args[0]}", err=True)
        raise typer.Exit(2) from None
    try:
        info, position = _probe(pipette, rig.simulation_seed)
    except (ManipulatorError, ValueError) as exc:
        typer.echo(f"error: {name} ({_address(pipette)}) did not answer: {exc}", err=True)
        typer.echo(f"hint: {_hint(pipette)}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{name}: {_address(pipette)}")
    typer.echo(f"  model     {info.model}")
    typer.echo(f"  serial    {info.serial}")
    typer.echo(f"  firmware  {info.firmware}")
    typer.echo(f"  axes      {info.n_axes}")
    typer.echo(f"  position  {_format_position(position)}")
