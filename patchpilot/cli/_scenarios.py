"""``patchpilot benchmark approach``: the closed loop over many random simulated scenarios.

Registered in the ``benchmark`` group (``patchpilot.cli._acquisition.benchmark_app``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

ImagingChoice = Literal["standin", "rendered"]
ModeChoice = Literal["stale", "autocal", "mixed"]

_SHOWN = (
    ("success_rate", "success rate", "{:.3f}"),
    ("final_error_um_median", "final error median (µm)", "{:.2f}"),
    ("final_error_um_p95", "final error p95 (µm)", "{:.2f}"),
    ("final_error_um_max", "final error max (µm)", "{:.2f}"),
    ("collisions", "collisions", "{}"),
    ("min_body_distance_um", "closest bodies (µm)", "{:.1f}"),
    ("nogo_entries", "no-go entries", "{}"),
    ("lateral_moves_in_tissue", "lateral moves in tissue", "{}"),
    ("time_to_target_s_median", "time to target median (s)", "{:.1f}"),
    ("time_to_target_s_p95", "time to target p95 (s)", "{:.1f}"),
    ("corrections_per_approach", "corrections per approach", "{:.2f}"),
    ("manual_interventions", "manual interventions", "{}"),
    ("calibration_residual_um_median", "calibration residual median (µm)", "{:.2f}"),
    ("calibration_residual_um_max", "calibration residual max (µm)", "{:.2f}"),
    ("speed_vs_real_time", "speed vs real time", "{:.1f}x"),
)


def _shown(value: Any, pattern: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return pattern.format(value)


def approach(
    scenarios: Annotated[
        int, typer.Option("--scenarios", min=1, max=100000, help="Number of random scenarios.")
    ] = 50,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the figures to this JSON file.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the first scenario.")] = 1000,
    imaging: Annotated[
        ImagingChoice,
        typer.Option(
            "--imaging",
            help="standin: true tips plus localiser-like noise (fast); rendered: the scene "
            "renderer and the real localiser (slow, the honest figure).",
        ),
    ] = "standin",
    mode: Annotated[
        ModeChoice,
        typer.Option(
            "--mode",
            help="stale: start from a calibration off by up to 50 µm and 3 degrees; autocal: "
            "calibrate from the images first; mixed: alternate.",
        ),
    ] = "stale",
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="Localiser of --imaging rendered (default: shipped)."),
    ] = None,
    time_limit_s: Annotated[
        float,
        typer.Option("--time-limit-s", min=10.0, help="Simulated seconds an approach may take."),
    ] = 400.0,
) -> None:
    """Closed-loop approach over random simulated scenarios, on a faster-than-real-time clock.

    Each scenario: 2 to 4 pipettes on imperfect simulated manipulators (mounting errors,
    backlash, drift), sometimes a vessel to avoid, a target per pipette; scored against the
    simulators' physical tips. Prints success rate, final errors, collisions, no-go entries,
    time to target, corrections and manual interventions.
    """
    from patchpilot.scenarios import ScenarioResult, run_scenario, summarise

    localiser: Any = None
    if imaging == "rendered":
        localiser = _load_localiser(checkpoint)
    results: list[ScenarioResult] = []
    for k in range(scenarios):
        alternate: Literal["stale", "autocal"] = "stale" if k % 2 == 0 else "autocal"
        scenario_mode = alternate if mode == "mixed" else mode
        result = run_scenario(
            seed + k,
            scenario_mode,
            time_limit_s=time_limit_s,
            imaging=imaging,
            localiser=localiser,
        )
        results.append(result)
        errors = ", ".join(f"{e:.2f}" for e in result.final_errors_um)
        verdict = "ok" if result.success else "FAILED " + "; ".join(result.notes)
        typer.echo(
            f"[{k + 1}/{scenarios}] seed {result.seed} {scenario_mode} {result.pipettes} "
            f"pipettes: errors [{errors}] µm, {result.simulated_s:.0f} s simulated in "
            f"{result.wall_s:.1f} s: {verdict}"
        )
    figures = summarise(results)
    figures["seed"] = seed
    figures["mode"] = mode
    typer.echo(f"== {scenarios} scenarios, imaging {imaging}, mode {mode}")
    for key, label, pattern in _SHOWN:
        typer.echo(f"  {label}: {_shown(figures.get(key), pattern)}")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(figures, indent=1), encoding="utf-8")
        typer.echo(f"wrote {json_path}")


def _load_localiser(checkpoint: Path | None) -> Any:
    from patchpilot.localisation import LocaliserError
    from patchpilot.localisation.inference import Localiser

    try:
        if checkpoint is None:
            return Localiser.from_pretrained(num_threads=1)
        return Localiser.from_checkpoint(checkpoint, num_threads=1)
    except LocaliserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
