"""Latency and accuracy of the real-time default (``fast``) beside the paper's network.

In one run on this machine: median and p99 latency of ``Localiser.localise`` per 256 x 256
frame at the model's pixel size (batch 1, 2 threads, after warm-up; end to end: checks,
resampling, normalisation, network, decoding), the median on the held-out frames as they come
(pixel sizes 0.5 to 2 µm, so 128 to 512 model pixels a side), and the evaluation of both on
the same held-out simulated test frames (scene families never used in training).

    .venv/bin/python benchmarks/localiser.py [--n 200] [--json PATH]
        [--fast CHECKPOINT] [--paper CHECKPOINT]

Without ``--paper`` the paper network is randomly initialised (no trained checkpoint of it
exists here); its latency is then real but its accuracy is that of an untrained network, and
the output says so.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from patchpilot.localisation import create_localiser
from patchpilot.localisation.evaluation import evaluate, results_table
from patchpilot.localisation.inference import Localiser
from patchpilot.localisation.sources import DEFAULT_CACHE, simulated_set

KEYS = (
    "within_3um",
    "within_5um",
    "within_10um",
    "mean_distance_um",
    "precision",
    "recall",
)


def _latency(
    localiser: Localiser, frames: list[np.ndarray], pixel_um: float, warmup: int
) -> list[float]:
    for frame in frames[:warmup]:
        localiser.localise(frame, pixel_um)
    times = []
    for frame in frames:
        localiser.localise(frame, pixel_um)
        times.append(localiser.last_latency_ms)
    return times


def _latency_mixed(localiser: Localiser, samples: Any, count: int) -> list[float]:
    times = []
    for i in range(min(count, len(samples))):
        localiser.localise(samples.images[i], float(samples.pixel_size_um[i]))
        times.append(localiser.last_latency_ms)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200, help="held-out frames evaluated")
    parser.add_argument("--latency-n", type=int, default=100, help="frames timed per model")
    parser.add_argument(
        "--fast", type=Path, default=None, help="fast checkpoint (default: shipped)"
    )
    parser.add_argument("--paper", type=Path, default=None, help="trained paper checkpoint")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    fast = (
        Localiser.from_checkpoint(args.fast, num_threads=args.threads)
        if args.fast
        else Localiser.from_pretrained(num_threads=args.threads)
    )
    paper_trained = args.paper is not None
    paper = (
        Localiser.from_checkpoint(args.paper, num_threads=args.threads)
        if paper_trained
        else Localiser(create_localiser("paper"), num_threads=args.threads)
    )
    models = {"fast": fast, "paper": paper}
    notes = {
        "fast": f"trained ({fast.info.get('checkpoint')}, {fast.backend})",
        "paper": (
            f"trained ({args.paper}, {paper.backend})"
            if paper_trained
            else "UNTRAINED random init (no trained paper checkpoint): latency is real, "
            "accuracy is not meaningful"
        ),
    }
    test = simulated_set("test", args.n, cache_dir=args.cache, workers=2)
    report: dict[str, Any] = {}
    results = {}
    for name, localiser in models.items():
        px = localiser.pixel_size_um
        timed = simulated_set(
            "test",
            args.latency_n,
            first=args.n,
            cache_dir=args.cache,
            scene_kwargs={"pixel_size_um": px, "size_px": 256},
        )
        times = _latency(localiser, list(timed.images), px, warmup=5)
        mixed = _latency_mixed(localiser, test, args.latency_n)
        started = time.perf_counter()
        result = evaluate(localiser, test)
        results[name] = result
        overall = result.overall
        report[name] = {
            "latency_ms_median": float(np.median(times)),
            "latency_ms_p99": float(np.percentile(times, 99)),
            "latency_ms_median_test_frames": float(np.median(mixed)),
            **{k: overall[k] for k in KEYS},
            "heatmap_iou": overall["heatmap_iou"],
            "by_pipettes": {
                k: {m: v[m] for m in KEYS} for k, v in result.groups.items() if k != "all"
            },
            "backend": localiser.backend,
            "trained": name == "fast" or paper_trained,
            "note": notes[name],
            "evaluation_s": round(time.perf_counter() - started, 1),
        }
    speedup = report["paper"]["latency_ms_median"] / report["fast"]["latency_ms_median"]
    report["speedup_fast_vs_paper"] = speedup
    report["setup"] = {
        "frames_evaluated": len(test),
        "test_data": test.provenance,
        "threads": args.threads,
        "latency_frames": args.latency_n,
        "torch": torch.__version__,
    }

    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(
        title=f"Localiser benchmark ({len(test)} held-out frames, {args.threads} threads)"
    )
    table.add_column("metric")
    for name in models:
        table.add_column(name, justify="right")
    rows = [
        ("latency_ms_median", "{:.1f}"),
        ("latency_ms_p99", "{:.1f}"),
        ("latency_ms_median_test_frames", "{:.1f}"),
    ]
    rows += [(k, "{:.2f}" if k == "mean_distance_um" else "{:.1%}") for k in KEYS]
    for key, pattern in rows:
        table.add_row(key, *[_fmt(report[n][key], pattern) for n in models])
    console.print(table)
    console.print(f"fast is {speedup:.1f}x faster than paper (median per 256 x 256 frame)")
    for name in models:
        console.print(f"{name}: {notes[name]}")
    console.print(results_table(results, title="By number of pipettes"))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_clean(report), indent=2) + "\n")
        console.print(f"JSON: {args.json}")


def _fmt(value: Any, pattern: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return pattern.format(value)


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


if __name__ == "__main__":
    main()
