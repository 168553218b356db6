"""``patchpilot dry-run`` (the simulated rig, end to end) and ``patchpilot run`` (a real rig)."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from patchpilot.cli._common import load_rig, open_experiment, stop_all_on_ctrl_c

if TYPE_CHECKING:
    from patchpilot.experiment import Experiment

DEFAULT_SIM_CONFIG = Path("configs/sim-4.yaml")


def _default_out(kind: str) -> Path:
    return Path("reports") / f"{kind}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _fmt(value: float | None, unit: str = "µm") -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.2f} {unit}"


class _Console:
    """Rich progress on the console: one line per stage, a live table during the approach."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console()
        self._live: Any = None
        self._last_states: dict[str, str] = {}

    def __call__(self, stage: str, details: Mapping[str, Any]) -> None:
        if stage == "acquisition":
            self.console.print(
                f"[bold]acquisition[/] running: {details.get('frame_rate_hz', 0):.1f} frames/s, "
                f"localiser {details.get('localiser_latency_ms', float('nan')):.1f} ms"
            )
        elif stage == "calibrating":
            self.console.print(f"[bold]calibrating[/] {', '.join(details['pipettes'])} ...")
        elif stage == "recalibrating":
            self.console.print(
                f"  {details['pipette']}: calibration failed ({details['reason']}); once more"
            )
        elif stage == "calibrated":
            for name, outcome in details.items():
                line = f"  {name}: {outcome['verdict']}, residual {_fmt(outcome['residual_um'])}"
                if not outcome["accepted"]:
                    line += f" ({outcome['reason']}): left where it is"
                self.console.print(line)
        elif stage == "targets":
            for name, target in details.items():
                x, y, z = target
                self.console.print(f"  {name} -> nucleus at ({x:.1f}, {y:.1f}, {z:.1f}) µm")
            self._start_live()
        elif stage == "approach refused":
            self.console.print(f"[red]approach not started:[/] {details['reason']} (nothing moved)")
        elif stage == "approach":
            self._update(details)
        elif stage == "done":
            self._stop_live()

    def _table(self, status: Mapping[str, Mapping[str, Any]]) -> Any:
        from rich.table import Table

        table = Table(title="approach", expand=False)
        for column in ("pipette", "state", "distance to target", "corrections", "note"):
            table.add_column(column)
        for name, st in status.items():
            note = st.get("fault") or st.get("paused_because") or st.get("waiting_for") or ""
            table.add_row(
                name,
                st["state"],
                _fmt(st.get("distance_to_target_um")),
                str(st.get("corrections", 0)),
                str(note)[:50],
            )
        return table

    def _start_live(self) -> None:
        from rich.live import Live

        self._live = Live(console=self.console, refresh_per_second=4, transient=False)
        self._live.start()

    def _update(self, status: Mapping[str, Mapping[str, Any]]) -> None:
        if self._live is not None:
            self._live.update(self._table(status))
        states = {n: s["state"] for n, s in status.items()}
        if not self.console.is_terminal and states != self._last_states:
            changed = [f"{n}: {s}" for n, s in states.items() if self._last_states.get(n) != s]
            self.console.print("  " + ", ".join(changed))
        self._last_states = states

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def _serve_panel(experiment: Experiment) -> Any:
    from patchpilot.panel import serve_panel

    return serve_panel(experiment)  # prints its address (and token, if one is needed)


EXIT_NOT_EVERY_TARGET = 3
"""``dry-run`` exit status: the run finished and wrote its report, but not every pipette
reached its target (0: all did; 1: the run failed; 2: bad usage)."""


def dry_run(
    config: Annotated[Path, typer.Option(help="A simulated rig.")] = DEFAULT_SIM_CONFIG,
    pipettes: Annotated[int | None, typer.Option(help="Use only the first N pipettes.")] = None,
    seed: Annotated[int | None, typer.Option(help="Scene seed (tissue, noise, targets).")] = None,
    panel: Annotated[bool, typer.Option("--panel", help="Serve the control panel.")] = False,
    fast: Annotated[
        bool, typer.Option("--fast", help="Quicker demo: faster in-tissue speed, shorter approach.")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Report folder.")] = None,
    timeout: Annotated[float, typer.Option(help="Approach time limit (s).")] = 600.0,
) -> None:
    """Dry-run on a simulated rig: calibrate, choose targets, approach, write a report.

    Exit status 0 when every pipette reached its target, 3 when the run finished but some
    did not (see the report), 1 when the run failed, 2 for bad usage.
    """
    from patchpilot.dryrun import quicken, run_dry_run, subset_pipettes

    rig = load_rig(config)
    if not rig.is_simulated:
        typer.echo(f"error: {config} is not a simulated rig; use `patchpilot run`", err=True)
        raise typer.Exit(2)
    try:
        rig = subset_pipettes(rig, pipettes)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if fast:
        rig = quicken(rig)
    folder = out or _default_out("dry-run")
    progress = _Console()
    progress.console.print(
        f"[bold]patchpilot dry-run[/]: rig {rig.name}, {len(rig.pipettes)} pipettes, "
        f"seed {seed if seed is not None else rig.simulation_seed}, report in {folder}"
    )
    servers: list[Any] = []

    def started(experiment: Experiment) -> None:
        if panel:
            servers.append(_serve_panel(experiment))

    try:
        result = run_dry_run(
            rig, folder, seed=seed, timeout_s=timeout, progress=progress, on_started=started
        )
    except (RuntimeError, ValueError) as exc:
        progress.console.print(f"[red]dry-run failed:[/] {exc}")
        raise typer.Exit(1) from None
    finally:
        progress._stop_live()
        for server in servers:
            server.stop()
    summary = result.summary()
    progress.console.print(
        f"[bold]done[/] in {summary['duration_s']:.0f} s: success {summary['success_rate']:.0%}, "
        f"median final error {_fmt(summary['final_error_um_median'])}, closest bodies "
        f"{_fmt(summary['min_clearance_um'])}"
    )
    progress.console.print(f"report: {folder / 'report.json'} and {folder / 'report.png'}")
    if summary["success_rate"] < 1.0:
        # Finished and reported, but not every pipette reached its target (each one that did
        # not is paused with its reason, or was not calibrated): a distinct exit status.
        raise typer.Exit(EXIT_NOT_EVERY_TARGET)


def _parse_target(text: str) -> tuple[str, tuple[float, float, float]]:
    try:
        name, coords = text.split("=", 1)
        x, y, z = (float(v) for v in coords.split(","))
    except ValueError:
        raise typer.BadParameter(f"{text!r}: expected NAME=x,y,z (µm)") from None
    if not all(math.isfinite(v) for v in (x, y, z)):
        raise typer.BadParameter(f"{text!r}: coordinates must be finite")
    return name.strip(), (x, y, z)


def run(
    config: Annotated[Path, typer.Option(help="The rig configuration.")],
    observe_only: Annotated[
        bool, typer.Option("--observe-only", help="Localise and track; never move.")
    ] = False,
    panel: Annotated[bool, typer.Option("--panel", help="Serve the control panel.")] = False,
    calibrate: Annotated[
        bool, typer.Option("--calibrate", help="Calibrate every pipette.")
    ] = False,
    target: Annotated[
        list[str] | None, typer.Option(help="NAME=x,y,z (µm, sample frame); repeatable.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Event log and recordings folder.")] = None,
    record: Annotated[bool, typer.Option("--record", help="Save every frame.")] = False,
) -> None:
    """Run on a real rig (or a simulated one): the same code as the dry-run.

    Ctrl-C stops every manipulator, then closes the acquisition.
    """
    from rich.console import Console

    console = Console()
    rig = load_rig(config)
    targets = [_parse_target(t) for t in (target or [])]
    if observe_only and (calibrate or targets):
        typer.echo("error: --observe-only never moves; drop --calibrate/--target", err=True)
        raise typer.Exit(2)
    folder = out or _default_out("run")
    experiment = open_experiment(rig, folder, record=record, observe_only=observe_only)
    server = None
    try:
        with stop_all_on_ctrl_c(experiment) as interrupted:
            experiment.start()
            console.print(
                f"[bold]running[/] rig {rig.name}; events in {folder / 'events.jsonl'}; "
                "Ctrl-C stops all"
            )
            if panel:
                server = _serve_panel(experiment)
            if calibrate:
                for name, outcome in experiment.controller.calibrate_all().items():
                    console.print(f"  {name}: {outcome.verdict}")
            for name, point in targets:
                console.print(experiment.controller.set_target(name, point))
            if targets:
                experiment.controller.start_approach()
            while not interrupted.is_set():
                time.sleep(0.5)
    finally:
        if server is not None:
            server.stop()
        experiment.close()
    console.print("stopped")
