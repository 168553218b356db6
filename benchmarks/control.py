"""Closed-loop control over many random simulated scenarios; prints (and saves) the figures.

    .venv/bin/python benchmarks/control.py --scenarios 200 --json reports/control.json

Each scenario (``patchpilot/scenarios/``): 2 to 4 pipettes on imperfect simulated
manipulators (backlash, drift, readout noise), a noisy localiser stand-in with misses and
spurious tips, sometimes a vessel to avoid, and either a stale calibration (off by up to 50 µm,
turned by up to 3 degrees: ``--mode stale``) or the controller's own calibration
(``--mode autocal``). Runs on a simulated clock, faster than real time. Scores use the
simulators' physical tips.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from patchpilot.scenarios import ScenarioResult, run_scenario, summarise


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
