"""``patchpilot config``: check a rig configuration file."""

from __future__ import annotations

from pathlib import Path

import typer

from patchpilot.cli._common import load_rig

config_app = typer.Typer(help="Rig configuration files.", no_args_is_help=True)


@config_app.command("check")
def check(path: Path = typer.Argument(..., help="A rig configuration (YAML).")) -> None:
    """Validate a configuration and summarise it; exit 2 with one clear message if it is bad."""
    config = load_rig(path)
    typer.echo(
        f"{path}: OK — rig {config.name!r}, microscope {config.microscope.kind}, "
        f"{config.microscope.frame_width_px}x{config.microscope.frame_height_px} px at "
        f"{config.microscope.pixel_size_um:g} µm/px"
    )
    for pipette in config.pipettes:
        typer.echo(
            f"  {pipette.name}: {pipette.driver.kind}, pitch {pipette.pitch_deg:g}°, "
            f"yaw {pipette.yaw_deg:g}°, standoff {pipette.target_standoff_um:g} µm"
        )
    zones = len(config.safety.nogo_zones)
    typer.echo(
        f"  safety: clearance {config.safety.min_clearance_um:g} µm, "
        f"{zones} no-go zone{'s' if zones != 1 else ''}"
    )
