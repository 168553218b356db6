"""``patchpilot dataset synth|show`` and ``patchpilot simulate``: synthetic frames on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["dataset_app", "register_dataset_commands", "simulate"]

dataset_app = typer.Typer(
    help="Synthetic two-photon frames with COCO keypoint labels.", no_args_is_help=True
)


def _parse_pipettes(text: str) -> int | tuple[int, int]:
    try:
        if "-" in text:
            low, high = (int(part) for part in text.split("-", 1))
            if not 0 <= low <= high <= 8:
                raise ValueError
            return (low, high)
        count = int(text)
        if not 0 <= count <= 8:
            raise ValueError
        return count
    except ValueError:
        raise typer.BadParameter(
            f"expected a count 0-8 or a range like 1-4, got {text!r}"
        ) from None


def _scene_kwargs(pipettes: str, pixel_size: float | None, size: int) -> dict[str, object]:
    if pixel_size is not None and not 0 < pixel_size <= 50:
        raise typer.BadParameter(f"--pixel-size must be in (0, 50] µm, got {pixel_size}")
    if not 16 <= size <= 4096:
        raise typer.BadParameter(f"--size must be 16 to 4096 pixels, got {size}")
    kwargs: dict[str, object] = {"n_pipettes": _parse_pipettes(pipettes), "size_px": size}
    if pixel_size is not None:
        kwargs["pixel_size_um"] = pixel_size
    return kwargs


@dataset_app.command("synth")
def synth(
    out: Annotated[Path, typer.Option("--out", help="Folder for images/ and annotations.json.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of scene families.")] = 100,
    pipettes: Annotated[str, typer.Option(help="Pipettes per frame: a count or a range.")] = "1-4",
    seed: Annotated[int, typer.Option(min=0, help="First family, counted within the split.")] = 0,
    split: Annotated[
        str, typer.Option(help="train, val or test (disjoint seed ranges).")
    ] = "train",
    pixel_size: Annotated[
        float | None, typer.Option(help="µm per pixel; default: drawn from 0.5-2.")
    ] = None,
    size: Annotated[int, typer.Option(help="Frame width and height in pixels.")] = 256,
    frames_per_scene: Annotated[
        int, typer.Option(min=1, max=100, help="Consecutive frames of each family.")
    ] = 1,
    clean: Annotated[bool, typer.Option(help="Render the clean (ex vivo) domain.")] = False,
) -> None:
    """Render N scene families of one split to 16-bit PNGs and COCO keypoint labels."""
    from patchpilot.scene import (
        GENERATOR_VERSION,
        SPLIT_SEEDS,
        render,
        render_clean,
        scene_for_seed,
        scene_sequence,
    )
    from patchpilot.scene.coco import CocoWriter

    if split not in SPLIT_SEEDS:
        raise typer.BadParameter(f"--split must be one of {sorted(SPLIT_SEEDS)}, got {split!r}")
    low, high = SPLIT_SEEDS[split]
    first, last = low + seed, low + seed + n
    if last > high:
        raise typer.BadParameter(
            f"families {seed}..{seed + n - 1} run past the {split} split ({high - low} families)"
        )
    kwargs = _scene_kwargs(pipettes, pixel_size, size)
    writer = CocoWriter(
        out,
        info={
            "description": "patchpilot synthetic two-photon pipette frames",
            "generator_version": GENERATOR_VERSION,
            "split": split,
            "seed_range": [first, last],
            "frames_per_scene": frames_per_scene,
            "scene_kwargs": {k: v for k, v in kwargs.items()},
            "clean_domain": clean,
        },
    )
    draw = render_clean if clean else render
    tips = 0
    for family in range(first, last):
        scene, noise = scene_for_seed(family, **kwargs)
        for frame, moment in enumerate(scene_sequence(scene, frames_per_scene)):
            image, truth = draw(moment, noise)
            writer.add(
                f"{family:07d}_{frame:02d}",
                image,
                truth,
                moment.view,
                seed=family,
                frame=frame,
                split=split,
            )
            tips += sum(t.in_frame for t in truth)
    path = writer.write()
    typer.echo(
        f"wrote {n * frames_per_scene} frames ({tips} tips in frame) of split {split} "
        f"(seeds {first}..{last - 1}) to {path.parent}"
    )


@dataset_app.command("show")
def show(
    folder: Annotated[Path, typer.Argument(help="A folder written by 'dataset synth'.")],
    out: Annotated[Path, typer.Option("--out", help="Contact sheet PNG to write.")] = Path(
        "sheet.png"
    ),
    count: Annotated[int, typer.Option("--max", min=1, max=400, help="Frames to show.")] = 16,
    columns: Annotated[int, typer.Option(min=1, max=20)] = 4,
) -> None:
    """Write a contact sheet of the first frames with their labelled tips ringed."""
    from patchpilot.scene import SceneError
    from patchpilot.scene.coco import ANNOTATION_FILE, load_coco_keypoints, read_image
    from patchpilot.scene.sheet import Tile, contact_sheet

    try:
        labelled = load_coco_keypoints(folder)
        document = json.loads((folder / ANNOTATION_FILE).read_text(encoding="utf-8"))
    except (SceneError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    flags: dict[object, list[bool]] = {}
    for ann in document.get("annotations", []):
        if ann["keypoints"][2] > 0:
            flags.setdefault(ann["image_id"], []).append(ann["keypoints"][2] == 2)
    tiles = []
    for entry, item in zip(document["images"][:count], labelled[:count], strict=False):
        focused = flags.get(entry["id"], [])
        tips = [
            (float(x), float(y), focused[k] if k < len(focused) else True)
            for k, (x, y) in enumerate(item.tips_px)
        ]
        caption = f"{item.path.stem} {item.pixel_size_um:.2f}um"
        tiles.append(Tile(read_image(item.path), tips, caption))
    if not tiles:
        typer.echo(f"error: {folder} holds no images", err=True)
        raise typer.Exit(2)
    contact_sheet(tiles, columns).save(out)
    typer.echo(f"wrote {len(tiles)} frames to {out}")


def simulate(
    out: Annotated[Path, typer.Option("--out", help="Folder for the frames.")] = Path("simulated"),
    frames: Annotated[int, typer.Option(min=1, max=1000, help="Consecutive frames.")] = 8,
    seed: Annotated[int, typer.Option(min=0, help="Scene seed.")] = 0,
    pipettes: Annotated[str, typer.Option(help="Pipettes: a count or a range.")] = "1-4",
    pixel_size: Annotated[float | None, typer.Option(help="µm per pixel.")] = 1.0,
    size: Annotated[int, typer.Option(help="Frame width and height in pixels.")] = 256,
    sheet: Annotated[
        Path | None,
        typer.Option(help="Instead: write the README's sample sheet (1-4 pipettes) here."),
    ] = None,
) -> None:
    """Render a short sequence of one random scene: 16-bit PNGs, a preview, the truth."""
    from patchpilot.scene import render, scene_for_seed, scene_sequence
    from patchpilot.scene.coco import write_image
    from patchpilot.scene.sheet import Tile, contact_sheet

    if sheet is not None:
        from patchpilot.scene.samples import sample_sheet

        sample_sheet(seed).save(sheet)
        typer.echo(f"wrote the sample sheet to {sheet}")
        return
    kwargs = _scene_kwargs(pipettes, pixel_size, size)
    scene, noise = scene_for_seed(seed, **kwargs)
    out.mkdir(parents=True, exist_ok=True)
    tiles, records = [], []
    for k, moment in enumerate(scene_sequence(scene, frames)):
        image, truth = render(moment, noise)
        write_image(out / f"frame_{k:03d}.png", image)
        marks = [(t.x_px, t.y_px, t.in_focus) for t in truth if t.in_frame]
        tiles.append(Tile(image, marks, f"t={moment.time_s - scene.time_s:.2f}s"))
        records.append({"frame": k, "time_s": moment.time_s, "tips": [t.__dict__ for t in truth]})
    contact_sheet(tiles, columns=4).save(out / "preview.png")
    (out / "truth.json").write_text(json.dumps(records, indent=1), encoding="utf-8")
    typer.echo(
        f"wrote {frames} frames of a {len(scene.pipettes)}-pipette scene "
        f"({scene.view.pixel_size_um:.2f} µm/px, frame period {scene.frame_time_s() * 1e3:.0f} ms) "
        f"to {out}"
    )


def register_dataset_commands(app: typer.Typer) -> None:
    """Add ``dataset`` and ``simulate`` to the main app."""
    app.add_typer(dataset_app, name="dataset")
    app.command("simulate")(simulate)
