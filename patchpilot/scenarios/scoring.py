"""Scoring of a scenario against the simulators' PHYSICAL tips, and the benchmark summary.

``score_safety`` looks at every third frame's true tips: body-to-body contacts, pipette bodies
entering a no-go zone inside the tissue, and in-tissue motions with a sideways part larger than
one correction. ``summarise`` turns many ``ScenarioResult`` into the benchmark's figures.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from patchpilot.config import SafetyConfig
from patchpilot.control.bodies import Body, batch_distance_um, pipette_body, tissue_part, zone_body
from patchpilot.control.geometry import PipetteGeometry

__all__ = ["ScenarioResult", "score_safety", "summarise"]


@dataclass
class ScenarioResult:
    """What happened in one scenario (µm, s)."""

    seed: int
    mode: str
    pipettes: int
    imaging: str = "standin"
    reached: int = 0
    final_errors_um: list[float] = field(default_factory=list)
    times_to_target_s: list[float] = field(default_factory=list)
    corrections: int = 0
    interventions: int = 0
    collisions: int = 0
    min_body_distance_um: float = math.inf
    nogo_entries: int = 0
    lateral_moves_in_tissue: int = 0
    max_off_axis_in_tissue_um: float = 0.0
    refused_targets: int = 0
    calibration_residuals_um: list[float] = field(default_factory=list)
    simulated_s: float = 0.0
    """Simulated time of the approach (from its start)."""
    total_simulated_s: float = 0.0
    """Simulated time of the whole scenario, calibration included."""
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return (
            self.reached == self.pipettes
            and self.collisions == 0
            and self.nogo_entries == 0
            and self.lateral_moves_in_tissue == 0
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["success"] = self.success
        return data


def score_safety(
    trajectory: list[dict[str, np.ndarray[Any, Any]]],
    geometries: dict[str, PipetteGeometry],
    safety: SafetyConfig,
    result: ScenarioResult,
) -> None:
    names = list(geometries)
    surface = safety.tissue_surface_z_um
    pairs: list[tuple[Body, Body]] = []
    pair_names: list[tuple[str, str]] = []
    for sample in trajectory[::3]:
        bodies = {n: pipette_body(geometries[n], sample[n]) for n in names}
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                pairs.append((bodies[a], bodies[b]))
                pair_names.append((a, b))
    if pairs:
        distances = batch_distance_um(pairs)
        result.min_body_distance_um = float(np.min(distances))
        result.collisions = len(
            {pair for pair, d in zip(pair_names, distances, strict=True) if d <= 0.0}
        )
    zone_pairs: list[tuple[Body, Body]] = []
    for zone in safety.nogo_zones:
        solid = zone_body(zone)
        for sample in trajectory[::3]:
            for name in names:
                inside = tissue_part(pipette_body(geometries[name], sample[name]), surface)
                if inside is not None:
                    zone_pairs.append((inside, solid))
    if zone_pairs:
        result.nogo_entries = int(np.sum(batch_distance_um(zone_pairs) <= 0.0))
    for name in names:
        _score_lateral(name, [s[name] for s in trajectory], geometries[name], safety, result)


def _score_lateral(
    name: str,
    tips: list[np.ndarray[Any, Any]],
    geometry: PipetteGeometry,
    safety: SafetyConfig,
    result: ScenarioResult,
) -> None:
    """Count in-tissue motions (between stops) whose sideways part exceeds one correction."""
    surface = safety.tissue_surface_z_um
    episode_start: np.ndarray[Any, Any] | None = None
    previous = tips[0]
    limit_um = safety.max_single_correction_um
    for tip in [*tips[1:], tips[-1]]:
        moving = float(np.linalg.norm(tip - previous)) > 0.02
        in_tissue = min(float(tip[2]), float(previous[2])) < surface
        if moving and in_tissue:
            if episode_start is None:
                episode_start = previous
        elif episode_start is not None:
            displacement = previous - episode_start
            sideways = geometry.off_axis_um(displacement)
            result.max_off_axis_in_tissue_um = max(result.max_off_axis_in_tissue_um, sideways)
            if sideways > max(limit_um, 0.1 * float(np.linalg.norm(displacement))):
                result.lateral_moves_in_tissue += 1
                result.notes.append(f"{name} moved {sideways:.1f} µm sideways in tissue")
            episode_start = None
        previous = tip


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def summarise(results: list[ScenarioResult]) -> dict[str, Any]:
    """The benchmark's figures over many scenarios (µm, s).

    ``success_rate`` counts approaches (one per pipette) that reached their target within
    3 µm in a scenario with no collision, no no-go entry and no sideways move in tissue.

    Raises
    ------
    ValueError
        No results.
    """
    if not results:
        raise ValueError("no scenario results to summarise")
    approaches = sum(r.pipettes for r in results)
    safe = [r for r in results if r.collisions == r.nogo_entries == r.lateral_moves_in_tissue == 0]
    errors = [e for r in results for e in r.final_errors_um]
    times = [t for r in results for t in r.times_to_target_s]
    residuals = [e for r in results for e in r.calibration_residuals_um]
    wall = sum(r.wall_s for r in results)
    simulated = sum(r.total_simulated_s for r in results)
    return {
        "scenarios": len(results),
        "imaging": sorted({r.imaging for r in results}),
        "modes": sorted({r.mode for r in results}),
        "approaches": approaches,
        "success_rate": sum(r.reached for r in safe) / approaches if approaches else None,
        "scenario_success_rate": sum(r.success for r in results) / len(results),
        "final_error_um_median": statistics.median(errors) if errors else None,
        "final_error_um_p95": _percentile(errors, 95),
        "final_error_um_max": max(errors) if errors else None,
        "collisions": sum(r.collisions for r in results),
        "min_body_distance_um": min(r.min_body_distance_um for r in results),
        "nogo_entries": sum(r.nogo_entries for r in results),
        "lateral_moves_in_tissue": sum(r.lateral_moves_in_tissue for r in results),
        "max_off_axis_in_tissue_um": max(r.max_off_axis_in_tissue_um for r in results),
        "time_to_target_s_median": statistics.median(times) if times else None,
        "time_to_target_s_p95": _percentile(times, 95),
        "corrections_per_approach": sum(r.corrections for r in results) / max(approaches, 1),
        "manual_interventions": sum(r.interventions for r in results),
        "refused_targets": sum(r.refused_targets for r in results),
        "calibration_residual_um_median": statistics.median(residuals) if residuals else None,
        "calibration_residual_um_max": max(residuals) if residuals else None,
        "simulated_s": simulated,
        "wall_s": wall,
        "speed_vs_real_time": simulated / wall if wall else None,
        "failures": [
            {"seed": r.seed, "mode": r.mode, "notes": r.notes} for r in results if not r.success
        ],
    }
