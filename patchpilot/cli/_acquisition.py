"""``patchpilot replay DIR`` and ``patchpilot benchmark latency``.

``benchmark_app`` is the ``patchpilot benchmark`` group; other parts add their own
benchmarks to it with ``@benchmark_app.command("name")``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from patchpilot.cli._common import load_rig

_DEFAULT_RIG = Path(__file__).resolve().parents[2] / "configs" / "sim-4.yaml"

benchmark_app = typer.Typer(help="Speed benchmarks (printed, or written as JSON).")


def _localiser(checkpoint: Path | None, num_threads: int = 1) -> tuple[Any, str]:
    from patchpilot.acquisition.benchmark import default_localiser
    from patchpilot.localisation import LocaliserError
    from patchpilot.localisation.inference import Localiser

    if checkpoint is None:
        return default_localiser(num_threads)
    try:
        localiser = Localiser.from_checkpoint(checkpoint, num_threads=num_threads)
        return localiser, f"checkpoint {checkpoint} ({localiser.backend})"
    except LocaliserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def replay(
    directory: Annotated[Path, typer.Argument(help="A recording folder (NDTiff + events).")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: DIR/replay).")
    ] = None,
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="Localiser checkpoint (default: shipped).")
    ] = None,
    max_frames: Annotated[
        int | None, typer.Option("--max-frames", min=1, help="Replay only the first N frames.")
    ] = None,
    png: Annotated[bool, typer.Option("--png/--no-png", help="One PNG per frame.")] = True,
    gif: Annotated[bool, typer.Option("--gif/--no-gif", help="An animated replay.gif.")] = True,
    pixel_size_um: Annotated[
        float | None,
        typer.Option("--pixel-size-um", min=0.0, help="For frames stored without one."),
    ] = None,
) -> None:
    """Re-run localisation on a recording; write annotated frames and metrics.json."""
    from patchpilot.acquisition.recording import RecordingError, open_recording
    from patchpilot.acquisition.replay import replay_recording

    try:
        recording = open_recording(directory)
    except RecordingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    localiser, description = _localiser(checkpoint)
    typer.echo(f"replaying {recording.dataset_path} with {description}")
    try:
        with recording:
            report = replay_recording(
                recording,
                localiser,
                out if out is not None else directory / "replay",
                max_frames=max_frames,
                write_png=png,
                write_gif=gif,
                default_pixel_size_um=pixel_size_um,
            )
    except RecordingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    metrics = report.metrics
    typer.echo(
        f"{metrics['frames_replayed']} frames, {metrics['tips_replayed']} tips; "
        f"{metrics['frames_reproduced']}/{metrics['frames_with_live_result']} frames with a live "
        f"result reproduced; localisation median {metrics['localise_ms_median']:.1f} ms"
    )
    if report.gif_path is not None:
        typer.echo(f"animation: {report.gif_path}")
    typer.echo(f"metrics: {report.metrics_path}")


@benchmark_app.command("latency")
def latency(
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the figures to this JSON file.")
    ] = None,
    seconds: Annotated[
        float, typer.Option("--seconds", min=0.5, help="Length of the measured run.")
    ] = 10.0,
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="Localiser checkpoint (default: shipped).")
    ] = None,
    threads: Annotated[
        int, typer.Option("--threads", min=1, max=64, help="Localiser threads.")
    ] = 1,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="Simulated rig whose scene the camera renders (default: sim-4)."
        ),
    ] = None,
    noise: Annotated[bool, typer.Option("--noise", help="Render noise only, no scene.")] = False,
) -> None:
    """Frame ready -> localisation -> subscriber latency at 30 frames/s (real pycromanager)."""
    from patchpilot.acquisition.benchmark import measure_latency
    from patchpilot.config import RigConfig

    rig: RigConfig | None = None
    if not noise:
        path = config if config is not None else _DEFAULT_RIG
        rig = load_rig(path)
        if not rig.is_simulated:
            typer.echo(f"error: {path}: the benchmark needs a simulated rig", err=True)
            raise typer.Exit(2)
    localiser, description = _localiser(checkpoint, threads)
    figures = measure_latency(
        seconds, localiser=localiser, localiser_name=description, rig=rig, progress=typer.echo
    )
    typer.echo(
        f"latency median {figures['latency_ms_median']:.1f} ms, p99 "
        f"{figures['latency_ms_p99']:.1f} ms; {figures['frames_acquired']} frames at "
        f"{figures['frame_rate_hz']:.1f} frames/s, {figures['frames_skipped']} skipped, "
        f"{'TRUNCATED' if figures['truncated'] else 'none lost'} ({figures['localiser']}; "
        f"scene: {figures['scene']})"
    )
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(figures, indent=1), encoding="utf-8")
        typer.echo(f"wrote {json_path}")
