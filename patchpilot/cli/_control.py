"""``patchpilot control``: pictures of the state machines and of plans."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from patchpilot.cli._common import load_rig

control_app = typer.Typer(help="Closed-loop control: diagrams and plans.", no_args_is_help=True)


@control_app.command("diagram")
def diagram(
    out: Annotated[Path, typer.Option(help="Folder for state-machine.md and .png.")] = Path("docs"),
) -> None:
    """Write the state machines as Mermaid (state-machine.md) and as a picture (.png)."""
    from patchpilot.control.diagram import write_docs

    for path in write_docs(out):
        typer.echo(f"wrote {path}")


@control_app.command("plan")
def plan(
    config: Annotated[Path, typer.Argument(help="A rig configuration with simulated drivers.")],
    target: Annotated[
        list[str],
        typer.Option(help="NAME=X,Y,Z in sample µm, once per pipette (e.g. P1=-20,-20,-60)."),
    ],
    out: Annotated[Path, typer.Option(help="PNG to draw the plans into.")] = Path("plan.png"),
) -> None:
    """Plan and sequence approaches from the simulated tips' start positions, print the plans
    and draw them (top and side views). Nothing moves."""
    import numpy as np

    from patchpilot.config import SimulatedDriverConfig
    from patchpilot.control.drawing import draw_plans
    from patchpilot.control.geometry import FieldOfView, PipetteGeometry
    from patchpilot.control.planning import PlanError, plan_approach
    from patchpilot.control.scheduling import MotionRequest, schedule_moves

    rig = load_rig(config)
    targets: dict[str, np.ndarray] = {}
    for item in target:
        name, _, numbers = item.partition("=")
        try:
            values = [float(v) for v in numbers.split(",")]
            rig.pipette(name)
        except (ValueError, KeyError) as exc:
            typer.echo(f"error: bad --target {item!r}: {exc}", err=True)
            raise typer.Exit(2) from None
        if len(values) != 3:
            typer.echo(f"error: --target {item!r} needs three numbers", err=True)
            raise typer.Exit(2)
        targets[name] = np.array(values)
    view = FieldOfView.from_microscope(rig.microscope)
    requests = {}
    plans = {}
    geometries = {}
    for pipette in rig.pipettes:
        if not isinstance(pipette.driver, SimulatedDriverConfig):
            typer.echo(f"error: {pipette.name} is not simulated; its start is unknown", err=True)
            raise typer.Exit(2)
        geometry = PipetteGeometry.from_config(pipette)
        geometries[pipette.name] = geometry
        start = np.array(pipette.driver.origin_um)
        planned = None
        if pipette.name in targets:
            try:
                planned = plan_approach(
                    geometry, start, targets[pipette.name], rig.safety, view=view
                )
            except PlanError as exc:
                typer.echo(f"refused: {exc}", err=True)
                raise typer.Exit(1) from None
            plans[pipette.name] = planned
        requests[pipette.name] = MotionRequest(geometry, start, planned)
    try:
        schedule = schedule_moves(requests, rig.safety.min_clearance_um)
    except PlanError as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(1) from None
    for planned in plans.values():
        typer.echo(planned.describe())
    typer.echo("order: " + " -> ".join(str(step) for step in schedule.order))
    typer.echo(f"wrote {draw_plans(plans, geometries, rig.safety, view, out)}")
