"""Frames rendered per second by the scene simulator at 256 x 256 on one core.

Three cases:

- ``camera``: the dry-run's simulated microscope: one tissue and four moving pipettes,
  focus fixed, every frame a new time (tissue motion, pipette motion) and new noise;
- ``camera-refocus``: the same with the focus stepping 0.5 µm every frame (the focal plane of
  the tissue is rebuilt each frame);
- ``dataset``: training data: a new random scene (tissue, pipettes, optics) for every frame.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/render.py [--frames N] [--json PATH]``.
Times are per frame, wall clock and process CPU time.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, before numpy loads

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from patchpilot.scene import (
    Acquisition,
    PipettePose,
    Scene,
    Tissue,
    View,
    render,
    scene_for_seed,
)


def _camera_scene() -> Scene:
    rng = np.random.default_rng(1)
    tissue = Tissue.random(rng, extent_um=(600.0, 600.0, 400.0))
    poses = tuple(
        PipettePose(
            f"p{k}",
            (30.0 * np.cos(np.radians(yaw + 180)), 30.0 * np.sin(np.radians(yaw + 180)), -30.0),
            30.0,
            yaw,
            polarity="dark" if k % 2 else "bright",
            plume_strength=0.5,
            velocity_um_s=(4.0, 0.0, 0.0),  # slow lateral drift: the scene stays alike
        )
        for k, yaw in enumerate((45.0, 135.0, 225.0, 315.0))
    )
    view = View((0.0, 0.0), -30.0, 256, 256, 1.0)
    return Scene(tissue, poses, view, acquisition=Acquisition())


def _time(step: Callable[[int], None], frames: int) -> dict[str, float]:
    """Per-frame wall and CPU times; the median resists other processes on a shared machine,
    the fastest tenth shows what an idle core does."""
    step(0)  # warm-up: texture bank, Poisson table, caches
    walls, cpus = [], []
    for k in range(1, frames + 1):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        step(k)
        walls.append(time.perf_counter() - wall0)
        cpus.append(time.process_time() - cpu0)
    median = float(np.median(walls))
    fastest = float(np.mean(np.sort(walls)[: max(1, frames // 10)]))
    return {
        "frames": frames,
        "ms_median": median * 1e3,
        "ms_fastest_tenth": fastest * 1e3,
        "ms_mean_cpu": float(np.mean(cpus)) * 1e3,
        "fps_median": 1 / median,
        "fps_fastest_tenth": 1 / fastest,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    scene = _camera_scene()
    period = scene.frame_time_s()

    def camera(k: int) -> None:
        render(scene.advanced(k * period), rng)

    def refocus(k: int) -> None:
        moment = scene.advanced(k * period)
        view = View((0.0, 0.0), -30.0 - 0.5 * k, 256, 256, 1.0)
        render(moment.replace(view=view), rng)

    def dataset(k: int) -> None:
        random, noise = scene_for_seed(10_000 + k, size_px=256)
        render(random, noise)

    results = {
        "camera": _time(camera, args.frames),
        "camera-refocus": _time(refocus, max(10, args.frames // 4)),
        "dataset": _time(dataset, max(10, args.frames // 4)),
    }
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"scene render benchmark, 256x256, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, "
        f"load average {load:.1f} on {os.cpu_count()} cores"
    )
    for name, r in results.items():
        print(
            f"  {name:15s} {r['fps_median']:7.1f} frames/s median ({r['ms_median']:.2f} ms), "
            f"{r['fps_fastest_tenth']:7.1f} frames/s fastest tenth "
            f"({r['ms_fastest_tenth']:.2f} ms), CPU {r['ms_mean_cpu']:.2f} ms"
        )
    if args.json is not None:
        payload = {
            "benchmark": "scene.render",
            "size_px": 256,
            "threads": os.environ["OMP_NUM_THREADS"],
            "machine": platform.machine(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "load_average": load,
            "results": results,
        }
        args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
