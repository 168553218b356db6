"""``patchpilot gan``: train the CycleGAN, train a localiser on enhanced frames, evaluate with
or without the enhancement (the paper's GAN ablation).

Heavy imports (torch, the renderer) happen inside the commands so ``--help`` is fast.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["gan_app"]

gan_app = typer.Typer(
    help="The paper's CycleGAN (in vivo -> clean crops around tips) and its ablation.",
    no_args_is_help=True,
)

Cache = Annotated[
    Path | None, typer.Option(help="Where rendered frames are cached (default: patchpilot's).")
]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _cache(cache: Path | None) -> Path:
    from patchpilot.localisation.sources import DEFAULT_CACHE

    return cache if cache is not None else DEFAULT_CACHE


Data = Annotated[
    Path | None,
    typer.Option(help="A saved sample set (.npz) instead of rendering (its first N frames)."),
]


def _frames(data: Path | None, split: str, n: int, cache: Path | None, workers: int) -> Any:
    """The first ``n`` frames of a saved set, or ``n`` simulated frames of ``split``."""
    from patchpilot.localisation import LocaliserError
    from patchpilot.localisation.samples import SampleSet
    from patchpilot.localisation.sources import simulated_set

    if data is None:
        return simulated_set(split, n, workers=workers, cache_dir=_cache(cache))
    if data.suffix != ".npz":
        raise LocaliserError(f"{data}: expected a saved sample set (.npz)")
    samples = SampleSet.load(data)
    return samples.subset(range(min(n, len(samples))))


def _command() -> str:
    return shlex.join(["patchpilot", *sys.argv[1:]])


@gan_app.command("train")
def train_gan(
    out: Annotated[Path, typer.Option(help="Run folder: cyclegan.pt, history, samples.png.")],
    minutes: Annotated[
        float | None, typer.Option(help="Wall-time budget (default 15 unless --steps).")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Step budget instead of minutes.")] = None,
    vivo_frames: Annotated[int, typer.Option(help="In vivo training frames (train split).")] = 1000,
    clean_frames: Annotated[int, typer.Option(help="Clean-domain frames (other families).")] = 1000,
    batch_size: Annotated[int, typer.Option(help="Crops per domain per step.")] = 8,
    crop_px: Annotated[int, typer.Option(help="Crop side at the model pixel size.")] = 64,
    pixel_size_um: Annotated[float, typer.Option(help="Pixel size of the crops (µm).")] = 1.0,
    seed: Annotated[int, typer.Option()] = 0,
    vivo_data: Data = None,
    cache: Cache = None,
    workers: Annotated[int, typer.Option(help="Processes rendering frames.")] = 2,
    threads: Annotated[int, typer.Option(help="Torch threads.")] = 2,
) -> None:
    """Train the CycleGAN on unpaired in vivo and clean crops around tips."""
    from patchpilot.localisation import LocaliserError
    from patchpilot.localisation.cyclegan import DomainFrames, GanConfig, clean_set, train_cyclegan

    if minutes is None and steps is None:
        minutes = 15.0
    try:
        started = time.time()
        vivo_set = _frames(vivo_data, "train", vivo_frames, cache, workers)
        clean = clean_set("train", clean_frames, workers=workers, cache_dir=_cache(cache))
        vivo = DomainFrames(vivo_set, pixel_size_um)
        clean_frames_ = DomainFrames(clean, pixel_size_um)
        typer.echo(
            f"data: {len(vivo)} in vivo, {len(clean_frames_)} clean frames "
            f"({time.time() - started:.0f} s)"
        )
        config = GanConfig(
            out_dir=out,
            minutes=minutes,
            steps=steps,
            batch_size=batch_size,
            crop_px=crop_px,
            pixel_size_um=pixel_size_um,
            seed=seed,
            num_threads=threads,
            command=_command(),
        )
        provenance = {"vivo": vivo_set.provenance, "clean": clean.provenance, "command": _command()}
        result = train_cyclegan(config, vivo, clean_frames_, provenance)
    except LocaliserError as exc:
        raise _fail(str(exc)) from None
    typer.echo(
        f"done: {result.steps} steps, {result.images_seen} crop pairs, "
        f"{result.elapsed_s / 60:.1f} min -> {result.path}"
    )


@gan_app.command("train-localiser")
def train_localiser(
    gan: Annotated[Path, typer.Option(help="CycleGAN checkpoint (patchpilot gan train).")],
    out: Annotated[Path, typer.Option(help="Run folder of the localiser.")],
    preset: Annotated[str, typer.Option(help="Localiser preset.")] = "c2f_vit_ti_128",
    minutes: Annotated[float | None, typer.Option(help="Wall-time budget.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: the preset's).")] = None,
    train_frames: Annotated[int | None, typer.Option(help="Default: the preset's.")] = None,
    val_frames: Annotated[int | None, typer.Option(help="Default: the preset's.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Default: the preset's.")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    data: Data = None,
    val_data: Data = None,
    cache: Cache = None,
    workers: Annotated[int, typer.Option(help="Processes rendering frames.")] = 2,
    threads: Annotated[int, typer.Option(help="Torch threads.")] = 2,
) -> None:
    """Train a localiser preset on frames enhanced by the CycleGAN around their tips."""
    from patchpilot.localisation import LocaliserError, get_preset
    from patchpilot.localisation.cyclegan import CropEnhancer, enhance_sample_set
    from patchpilot.localisation.training import TrainConfig, train

    try:
        spec = get_preset(preset)
        enhancer = CropEnhancer.from_checkpoint(gan)
        if abs(enhancer.pixel_size_um - spec.pixel_size_um) > 1e-9:
            raise LocaliserError(
                f"CycleGAN pixel size {enhancer.pixel_size_um} µm differs from preset "
                f"{preset!r} ({spec.pixel_size_um} µm)"
            )
        started = time.time()
        raw = {
            "train": _frames(data, "train", train_frames or spec.train_frames, cache, workers),
            "val": _frames(val_data, "val", val_frames or spec.val_frames, cache, workers),
        }
        sets = {
            k: enhance_sample_set(v, enhancer, seed=seed + i)
            for i, (k, v) in enumerate(raw.items())
        }
        data_s = time.time() - started
        typer.echo(
            f"data: enhanced {len(sets['train'])} + {len(sets['val'])} frames ({data_s:.0f} s)"
        )
        provenance: dict[str, Any] = {
            "train": sets["train"].provenance,
            "val": sets["val"].provenance,
            "gan": str(gan),
            "command": _command(),
            "data_seconds": round(data_s, 1),
        }
        config = TrainConfig(
            preset=preset,
            out_dir=out,
            seed=seed,
            epochs=epochs,
            minutes=minutes,
            batch_size=batch_size,
            num_threads=threads,
            command=_command(),
        )
        result = train(config, sets["train"], sets["val"], provenance)
    except LocaliserError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"done in {result.elapsed_s / 60:.1f} min: best {result.best_path}")


@gan_app.command("evaluate")
def evaluate_enhanced(
    checkpoint: Annotated[Path, typer.Option(help="Localiser checkpoint.")],
    gan: Annotated[Path | None, typer.Option(help="CycleGAN checkpoint.")] = None,
    enhance: Annotated[
        bool, typer.Option("--enhance/--no-enhance", help="Apply the CycleGAN (the ablation).")
    ] = True,
    candidates: Annotated[
        Path | None,
        typer.Option(help="Checkpoint of the first pass giving crop centres (default: itself)."),
    ] = None,
    candidate_threshold: Annotated[
        float, typer.Option(help="Confidence threshold of the first pass.")
    ] = 0.3,
    n: Annotated[int, typer.Option(help="Number of frames.")] = 300,
    split: Annotated[str, typer.Option(help="train, val or test (scene families).")] = "test",
    first: Annotated[int, typer.Option(help="First scene family of the split.")] = 0,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write metrics here.")] = None,
    worst: Annotated[Path | None, typer.Option(help="PNG of the worst frames.")] = None,
    data: Data = None,
    cache: Cache = None,
    workers: Annotated[int, typer.Option(help="Processes rendering frames.")] = 2,
    threads: Annotated[int, typer.Option()] = 2,
) -> None:
    """Evaluate a localiser with (default) or without the CycleGAN enhancement."""
    from rich.console import Console

    from patchpilot.localisation import LocaliserError
    from patchpilot.localisation.cyclegan import CropEnhancer, EnhancedLocaliser
    from patchpilot.localisation.evaluation import evaluate, plot_worst, results_table
    from patchpilot.localisation.inference import Localiser
    from patchpilot.localisation.sources import simulated_set

    if enhance and gan is None:
        raise _fail("--enhance needs --gan CHECKPOINT (or pass --no-enhance)")
    try:
        plain = Localiser.from_checkpoint(checkpoint, backend="torch", num_threads=threads)
        localiser: Localiser = plain
        if enhance and gan is not None:
            first_pass = (
                Localiser.from_checkpoint(
                    candidates,
                    backend="torch",
                    num_threads=threads,
                    confidence_threshold=candidate_threshold,
                )
                if candidates is not None
                else None
            )
            localiser = EnhancedLocaliser(
                plain.model,
                CropEnhancer.from_checkpoint(gan),
                first_pass,
                num_threads=threads,
                info=plain.info,
            )
        samples = (
            _frames(data, split, n, cache, workers)
            if data is not None
            else simulated_set(split, n, first=first, workers=workers, cache_dir=_cache(cache))
        )
        result = evaluate(localiser, samples)
    except LocaliserError as exc:
        raise _fail(str(exc)) from None
    name = f"{checkpoint.parent.name}/{checkpoint.stem}" + (" + GAN" if enhance else "")
    Console().print(results_table({name: result}, title=f"{split} split, {len(samples)} frames"))
    if json_path is not None:
        result.write_json(json_path)
        typer.echo(f"metrics: {json_path}")
    if worst is not None:
        plot_worst(samples, result, worst)
        typer.echo(f"worst cases: {worst}")
