"""``patchpilot panel``: run an experiment (simulated or real) and serve its control panel.

The panel binds the rig file's ``panel.host``/``panel.port`` (127.0.0.1:8765 by default);
binding another address prints a token that every command then needs. Ctrl-C (or
``--seconds``) stops every manipulator, then closes the acquisition and the devices.
Exit code 2 when the rig file is bad, the experiment cannot be built or the address cannot
be bound, with one message saying why.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from patchpilot.cli._common import load_rig, open_experiment, stop_all_on_ctrl_c

if TYPE_CHECKING:
    from patchpilot.experiment import Experiment

__all__ = ["panel"]


def _calibrate_in_background(experiment: Experiment) -> threading.Thread:
    def run() -> None:
        try:
            outcomes = experiment.controller.calibrate_all()
        except Exception as exc:  # reported; the panel stays up for the operator
            typer.echo(f"calibration failed: {exc}", err=True)
            return
        for name, outcome in outcomes.items():
            typer.echo(f"  {name}: calibration {outcome.verdict}")

    thread = threading.Thread(target=run, name="panel-cli-calibrate", daemon=True)
    thread.start()
    return thread


def panel(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Rig configuration (YAML), simulated or real.")
    ],
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on (default: panel.host, 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Port (default: panel.port; 0: any free port)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for the event log (and recordings).")
    ] = None,
    calibrate: Annotated[
        bool, typer.Option("--calibrate", help="Calibrate every pipette once the panel is up.")
    ] = False,
    observe_only: Annotated[
        bool, typer.Option("--observe-only", help="Localise and track; never move.")
    ] = False,
    record: Annotated[bool, typer.Option("--record", help="Save every frame.")] = False,
    seconds: Annotated[
        float | None, typer.Option(min=0.0, help="Stop by itself after this long (s).")
    ] = None,
) -> None:
    """Run an experiment with its web control panel (watch, take over, STOP ALL)."""
    from patchpilot.experiment import ExperimentError
    from patchpilot.panel import serve_panel

    rig = load_rig(config)
    if observe_only and calibrate:
        typer.echo("error: --observe-only never moves; drop --calibrate", err=True)
        raise typer.Exit(2)
    folder = out or Path("reports") / f"panel-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    experiment = open_experiment(rig, folder, record=record, observe_only=observe_only)
    server = None
    try:
        with stop_all_on_ctrl_c(experiment) as finished:
            try:
                experiment.start()
                server = serve_panel(experiment, host=host, port=port)
            except (ExperimentError, OSError, TimeoutError) as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from None
            typer.echo(f"rig {rig.name}: events in {folder / 'events.jsonl'}; Ctrl-C stops all")
            if calibrate:
                _calibrate_in_background(experiment)
            finished.wait(seconds)
            experiment.stop_all()
    finally:
        if server is not None:
            server.stop()
        experiment.close()
    typer.echo("stopped")
