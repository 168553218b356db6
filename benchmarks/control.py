"""Closed-loop control over many random simulated scenarios; prints (and saves) the figures.

    .venv/bin/python benchmarks/control.py --scenarios 200 --json reports/control.json

Each scenario (``tests/control/scenario.py``): 2 to 4 pipettes on imperfect simulated
manipulators (backlash, drift, readout noise), a noisy localiser stand-in with misses and
spurious tips, sometimes a vessel to avoid, and either a stale calibration (off by up to 50 µm,
turned by up to 3 degrees: ``--mode stale``) or the controller's own calibration
(``--mode autocal``). Runs on a simulated clock, faster than real time. Scores use the
simulators' physical tips.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from tests.control.scenario import ScenarioResult, run_scenario


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def summarise(results: list[ScenarioResult]) -> dict[str, Any]:
    """The figures over all scenarios (µm, s)."""
    approaches = sum(r.pipettes for r in results)
    safe = [r for r in results if r.collisions == r.nogo_entries == r.lateral_moves_in_tissue == 0]
    errors = [e for r in results for e in r.final_errors_um]
    times = [t for r in results for t in r.times_to_target_s]
    residuals = [e for r in results for e in r.calibration_residuals_um]
    wall = sum(r.wall_s for r in results)
    simulated = sum(r.simulated_s for r in results)
    return {
        "scenarios": len(results),
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=50)
    parser.add_argument("--mode", choices=("stale", "autocal", "both"), default="stale")
    parser.add_argument("--seed-start", type=int, default=1000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    modes = ("stale", "autocal") if args.mode == "both" else (args.mode,)
    report: dict[str, Any] = {}
    for mode in modes:
        results: list[ScenarioResult] = []
        started = time.perf_counter()
        for k in range(args.scenarios):
            result = run_scenario(args.seed_start + k, mode)
            results.append(result)
            if not result.success:
                print(f"  seed {result.seed} ({mode}) failed: {result.notes}", flush=True)
        figures = summarise(results)
        figures["benchmark_wall_s"] = time.perf_counter() - started
        report[mode] = figures
        print(f"== {mode}: {args.scenarios} scenarios")
        for key, value in figures.items():
            if key != "failures":
                shown = f"{value:.3f}" if isinstance(value, float) else value
                print(f"  {key}: {shown}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"written {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
