"""Every localiser trained here, the baselines and the classical method on ONE test set.

All rows go through the same :func:`patchpilot.localisation.evaluation.evaluate` on the same
held-out simulated frames (test split: scene families never used for training or
validation; 1 to 4 pipettes plus the simulator's few atypical 0 and 5-8 pipette scenes),
broken down by the number of tips in the frame. Latency is the median wall time of
``Localiser.localise`` (batch 1, ``--threads`` threads, end to end: checks, resampling,
tiling, network (ONNX Runtime where an export sits next to the checkpoint), merging; for
GAN rows also the first pass and the generator) on 256 x 256 frames at 1 µm per pixel, and
on the test frames as they come (0.5 to 2 µm per pixel). Each row carries its training
budget (wall minutes, images seen) read from its checkpoint.

    .venv/bin/python benchmarks/evaluation_table.py --json runs/evaluation_table.json \\
        [--runs runs] [--n 300] [--only "NAME;NAME"] [--markdown PATH]

``--only`` evaluates some rows and merges them into an existing ``--json`` file, so rows can
be added as their training runs finish. Rows whose checkpoints are missing are skipped and
listed as such.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from patchpilot.localisation import create_localiser
from patchpilot.localisation.baselines import coarse_only_from_checkpoint
from patchpilot.localisation.checkpoint import load_checkpoint
from patchpilot.localisation.cyclegan import CropEnhancer, EnhancedLocaliser, load_cyclegan
from patchpilot.localisation.evaluation import evaluate
from patchpilot.localisation.inference import WEIGHTS_DIR, Localiser
from patchpilot.localisation.sources import simulated_set

METRICS = (
    "n_frames",
    "n_true",
    "n_pred",
    "mean_distance_um",
    "within_3um",
    "within_5um",
    "within_10um",
    "precision",
    "recall",
    "heatmap_iou",
)


@dataclass(frozen=True)
class Row:
    """One table row: how to build its localiser and which files it depends on."""

    name: str
    kind: str
    needs: tuple[Path, ...]
    build: Callable[[], Localiser]
    checkpoint: Path | None
    gan: Path | None = None
    note: str = ""


def _rows(runs: Path, threads: int, candidate_threshold: float) -> list[Row]:
    def load(path: Path) -> Callable[[], Localiser]:
        return lambda: Localiser.from_checkpoint(path, num_threads=threads)

    def coarse(path: Path) -> Callable[[], Localiser]:
        return lambda: Localiser(coarse_only_from_checkpoint(path)[0], num_threads=threads)

    def enhanced(
        path: Path, gan: Path, first: Path, coarse_only: bool = False
    ) -> Callable[[], Localiser]:
        def build() -> Localiser:
            model = (
                coarse_only_from_checkpoint(path)[0]
                if coarse_only
                else Localiser.from_checkpoint(path).model
            )
            first_pass = Localiser.from_checkpoint(
                first,
                backend="torch",
                num_threads=threads,
                confidence_threshold=candidate_threshold,
            )
            return EnhancedLocaliser(
                model,
                CropEnhancer.from_checkpoint(gan),
                first_pass,
                num_threads=threads,
                info={"checkpoint": str(path)},
            )

        return build

    c2f = runs / "c2f_vit_ti_128" / "best.pt"
    c2f_gan = runs / "c2f_vit_ti_128_gan" / "best.pt"
    gan = runs / "gan" / "cyclegan.pt"
    fast = WEIGHTS_DIR / "fast.pt"
    rows = [
        Row("fast (shipped default)", "heatmap CNN", (fast,), load(fast), fast),
        Row(
            "paper ViT-B/16 c2f 256 px",
            "coarse-to-fine",
            (runs / "paper" / "best.pt",),
            load(runs / "paper" / "best.pt"),
            runs / "paper" / "best.pt",
        ),
        Row(
            "c2f ViT-S/16 128 px",
            "coarse-to-fine",
            (runs / "c2f_vit_s_128" / "best.pt",),
            load(runs / "c2f_vit_s_128" / "best.pt"),
            runs / "c2f_vit_s_128" / "best.pt",
        ),
        Row("c2f ViT-Ti/16 128 px", "coarse-to-fine", (c2f,), load(c2f), c2f),
        Row("  coarse only (heatmap peaks)", "ablation", (c2f,), coarse(c2f), c2f),
        Row(
            "  + CycleGAN",
            "ablation",
            (c2f_gan, gan, c2f),
            enhanced(c2f_gan, gan, c2f),
            c2f_gan,
            gan,
            "trained on enhanced frames; crops around the plain c2f model's detections",
        ),
        Row(
            "  + CycleGAN coarse only",
            "ablation",
            (c2f_gan, gan, c2f),
            enhanced(c2f_gan, gan, c2f, coarse_only=True),
            c2f_gan,
            gan,
        ),
    ]
    for backbone, label in (
        ("resnet18", "ResNet18"),
        ("resnet50", "ResNet50"),
        ("vgg16", "VGG16-style"),
        ("vit_ti", "ViT-Ti/16"),
    ):
        path = runs / f"regress_{backbone}" / "best.pt"
        rows.append(Row(f"regression {label}", "direct regression", (path,), load(path), path))
    rows.append(
        Row(
            "classical (skeleton ends)",
            "classical",
            (),
            lambda: Localiser(create_localiser("classical"), num_threads=threads),
            None,
            note="no training",
        )
    )
    return rows


def _budget(checkpoint: Path | None, gan: Path | None) -> dict[str, Any]:
    """Training wall time and images seen, from the checkpoint (and the GAN's)."""
    if checkpoint is None:
        return {"train_minutes": 0.0, "images_seen": 0, "exact": True}
    data = load_checkpoint(checkpoint)
    config = data.get("train_config", {})
    history = data.get("history", [])
    frames = int(data.get("provenance", {}).get("train", {}).get("n_frames", 0))
    batch = int(config.get("batch_size", 1))
    per_epoch = frames // batch * batch
    seen = data.get("images_seen")
    exact = seen is not None or config.get("minutes") is None
    if seen is None:
        # Epoch budgets run whole epochs; a minutes budget may cut an epoch short, so this
        # is then an upper bound.
        seen = len(history) * per_epoch
    out: dict[str, Any] = {
        "train_minutes": round(float(data.get("elapsed_s", 0.0)) / 60.0, 1),
        "images_seen": int(seen),
        "exact": bool(exact),
        "epochs": len(history),
        "train_frames": frames,
        "command": config.get("command") or data.get("provenance", {}).get("command"),
        "preset": data.get("preset_name"),
    }
    if gan is not None:
        _, meta = load_cyclegan(gan)
        out["gan_minutes"] = round(float(meta.get("elapsed_s", 0.0)) / 60.0, 1)
        out["gan_crop_pairs"] = int(meta.get("images_seen", 0))
        out["gan_command"] = meta.get("train_config", {}).get("command")
    return out


def _latency(localiser: Localiser, frames: Any, count: int) -> float:
    times = []
    for i in range(min(count, len(frames))):
        localiser.localise(frames.images[i], float(frames.pixel_size_um[i]))
        if i > 0:  # the first call warms up
            times.append(localiser.last_latency_ms)
    return float(np.median(times)) if times else math.nan


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def markdown(report: dict[str, Any]) -> str:
    """The README table (overall metrics, budget, latency) and the by-pipettes table."""
    lines = [
        "| model | kind | mean µm | ≤3 µm | ≤5 µm | ≤10 µm | precision | recall | IoU "
        "| ms/frame 256² | ms/test frame | train min | images seen |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_count = [
        "| model | " + " | ".join(f"{k} tips: ≤5 µm / recall" for k in "1234") + " |",
        "|---|---|---|---|---|",
    ]
    for name, row in report["rows"].items():
        m = row["groups"]["all"]
        b = row["budget"]
        budget_min = f"{b['train_minutes']:.0f}" + (
            f" + GAN {b['gan_minutes']:.0f}" if "gan_minutes" in b else ""
        )
        seen = f"{b['images_seen']:,}" + ("" if b["exact"] else " (≤)")
        lines.append(
            f"| {name.strip()} | {row['kind']} | {_f(m['mean_distance_um'], '{:.2f}')} "
            f"| {_f(m['within_3um'], '{:.1%}')} | {_f(m['within_5um'], '{:.1%}')} "
            f"| {_f(m['within_10um'], '{:.1%}')} | {_f(m['precision'], '{:.1%}')} "
            f"| {_f(m['recall'], '{:.1%}')} | {_f(m['heatmap_iou'], '{:.2f}')} "
            f"| {_f(row['latency_ms_median'], '{:.0f}')} "
            f"| {_f(row['latency_ms_median_test'], '{:.0f}')} "
            f"| {budget_min} | {seen} |"
        )
        cells = []
        for k in "1234":
            g = row["groups"].get(k)
            cells.append(
                "-"
                if g is None
                else f"{_f(g['within_5um'], '{:.0%}')} / {_f(g['recall'], '{:.0%}')}"
            )
        by_count.append(f"| {name.strip()} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + "\n".join(by_count) + "\n"


def _f(value: Any, pattern: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return pattern.format(value)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--n", type=int, default=300, help="held-out test frames")
    parser.add_argument("--latency-n", type=int, default=30, help="frames timed per row")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path("runs/cache"))
    parser.add_argument("--candidate-threshold", type=float, default=0.3)
    parser.add_argument("--only", type=str, default="", help="row names separated by semicolons")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    test = simulated_set("test", args.n, cache_dir=args.cache, workers=2)
    timed = simulated_set(
        "test",
        args.latency_n,
        first=args.n,
        cache_dir=args.cache,
        scene_kwargs={"pixel_size_um": 1.0, "size_px": 256},
    )
    report: dict[str, Any] = {"rows": {}, "skipped": {}}
    if args.only and args.json is not None and args.json.is_file():
        report = json.loads(args.json.read_text())
    wanted = {s.strip() for s in args.only.split(";") if s.strip()}
    for row in _rows(args.runs, args.threads, args.candidate_threshold):
        if wanted and row.name.strip() not in wanted:
            continue
        missing = [str(p) for p in row.needs if not p.is_file()]
        if missing:
            report["skipped"][row.name] = f"missing {', '.join(missing)}"
            report["rows"].pop(row.name, None)
            print(f"skip {row.name}: missing {', '.join(missing)}", flush=True)
            continue
        report["skipped"].pop(row.name, None)
        started = time.perf_counter()
        localiser = row.build()
        result = evaluate(localiser, test)
        report["rows"][row.name] = {
            "kind": row.kind,
            "note": row.note,
            "checkpoint": None if row.checkpoint is None else str(row.checkpoint),
            "groups": {g: {k: m.get(k) for k in METRICS} for g, m in result.groups.items()},
            # Every in-frame tip counts, out-of-focus ones too (no "don't care").
            "strict_all_in_frame_tips": {k: result.strict.get(k) for k in METRICS},
            "latency_ms_median": _latency(localiser, timed, args.latency_n),
            "latency_ms_median_test": _latency(localiser, test, args.latency_n),
            "budget": _budget(row.checkpoint, row.gan),
            "evaluation_s": round(time.perf_counter() - started, 1),
        }
        m = result.overall
        print(
            f"{row.name}: mean {m['mean_distance_um']:.2f} µm, ≤5 µm {m['within_5um']:.1%}, "
            f"P {m['precision']:.1%} R {m['recall']:.1%} ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    report["setup"] = {
        "test_data": test.provenance,
        "frames": len(test),
        "latency_frames": args.latency_n,
        "threads": args.threads,
        "torch": torch.__version__,
        "candidate_threshold": args.candidate_threshold,
    }
    print(markdown(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_clean(report), indent=1) + "\n")
    if args.markdown is not None:
        args.markdown.write_text(markdown(report))


if __name__ == "__main__":
    main()
