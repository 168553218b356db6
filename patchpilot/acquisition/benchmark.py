"""Latency benchmark: frame ready -> localisation result -> subscriber called.

Runs the simulated camera at its configured frame rate (30 frames/s) through a REAL
pycromanager acquisition with the rig's hook and the default localiser, for a few seconds,
and reports the median and 99th percentile latency, frames acquired, skipped and stored.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from patchpilot.acquisition.devices import ImageSource
from patchpilot.acquisition.hook import TipLocaliser
from patchpilot.acquisition.simulated_acquisition import SimulatedAcquisition
from patchpilot.config import MicroscopeConfig, RigConfig

__all__ = ["default_localiser", "measure_latency"]


def default_localiser(num_threads: int = 1) -> tuple[TipLocaliser, str]:
    """The shipped default localiser, and a description of it.

    Until trained weights are shipped, the ``fast`` preset untrained, loaded the way the
    default will be (checkpoint with its ONNX export next to it, so ONNX Runtime runs it):
    the same network at the same cost. One thread by default: on a 2-core machine the
    acquisition's own threads need the other core.
    """
    import tempfile
    from pathlib import Path

    from patchpilot.localisation import LocaliserError, create_localiser
    from patchpilot.localisation.checkpoint import save_checkpoint
    from patchpilot.localisation.export import export_onnx
    from patchpilot.localisation.inference import Localiser

    try:
        localiser = Localiser.from_pretrained(num_threads=num_threads)
        return localiser, f"default weights ({localiser.backend}, {num_threads} thread(s))"
    except LocaliserError:
        pass
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = save_checkpoint(Path(folder) / "fast.pt", create_localiser("fast"))
        export_onnx(checkpoint)
        localiser = Localiser.from_checkpoint(checkpoint, num_threads=num_threads)
    return localiser, (f"fast preset, untrained ({localiser.backend}, {num_threads} thread(s))")


def measure_latency(
    seconds: float = 10.0,
    *,
    localiser: TipLocaliser | None = None,
    localiser_name: str | None = None,
    microscope: MicroscopeConfig | None = None,
    source: ImageSource | None = None,
    rig: RigConfig | None = None,
    warmup_frames: int = 5,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the simulated acquisition for ``seconds`` and measure the hook's latency.

    Parameters
    ----------
    seconds
        Length of the measured run (after ``warmup_frames`` frames).
    localiser
        None: :func:`default_localiser`.
    microscope
        Frame size, pixel size and frame rate (default: 256x256 at 1 µm, 30 frames/s).
    source
        Renders the frames; None: noise, or the rig's scene when ``rig`` is given.
    rig
        A simulated rig: its microscope, and the scene with its simulated pipettes (their
        manipulators are created here and closed afterwards).

    Raises
    ------
    ValueError
        ``seconds`` is not positive.
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    if localiser is None:
        localiser, localiser_name = default_localiser()
    with contextlib.ExitStack() as stack:
        if rig is not None:
            microscope = microscope if microscope is not None else rig.microscope
            if source is None:
                source = _rig_scene(rig, stack)
        config = microscope if microscope is not None else MicroscopeConfig()
        figures = _run(config, localiser, source, seconds, warmup_frames, progress)
    figures["localiser"] = localiser_name or type(localiser).__name__
    if rig is not None:
        figures["scene"] = f"rig {rig.name!r} ({len(rig.pipettes)} pipettes)"
    else:
        figures["scene"] = type(source).__name__ if source is not None else "noise"
    return figures


def _rig_scene(rig: RigConfig, stack: contextlib.ExitStack) -> ImageSource:
    from patchpilot.acquisition.scene_source import SceneImageSource
    from patchpilot.clock import RealClock
    from patchpilot.events import EventLog
    from patchpilot.hardware import create_manipulators

    manipulators = create_manipulators(rig, log=EventLog(), clock=RealClock())
    for device in manipulators.values():
        stack.callback(device.close)
    return SceneImageSource.from_rig(rig, manipulators)


def _run(
    config: MicroscopeConfig,
    localiser: TipLocaliser,
    source: ImageSource | None,
    seconds: float,
    warmup_frames: int,
    progress: Callable[[str], None] | None,
) -> dict[str, Any]:
    system = SimulatedAcquisition(config, localiser, source=source, real_time=True)
    with system:
        deadline = time.monotonic() + 30.0
        while system.hook.stats.frames_localised < warmup_frames:
            if time.monotonic() > deadline:
                raise RuntimeError("no frame was localised within 30 s of starting")
            time.sleep(0.01)
        warm_latencies = len(system.hook.latencies_ms())
        start_stats = system.hook.stats
        started = time.perf_counter()
        if progress is not None:
            progress(f"measuring for {seconds:g} s ...")
        time.sleep(seconds)
        elapsed_s = time.perf_counter() - started
        end_stats = system.hook.stats
        latencies = np.array(system.hook.latencies_ms()[warm_latencies:], dtype=np.float64)
    final = system.hook.stats
    stored = system.frames_stored
    acquired = end_stats.frames_seen - start_stats.frames_seen
    return {
        "latency_ms_median": float(np.median(latencies)) if latencies.size else None,
        "latency_ms_p99": float(np.percentile(latencies, 99)) if latencies.size else None,
        "latency_ms_max": float(latencies.max()) if latencies.size else None,
        "frames_acquired": acquired,
        "frames_skipped": end_stats.frames_skipped - start_stats.frames_skipped,
        "frames_localised": end_stats.frames_localised - start_stats.frames_localised,
        "frames_rejected": end_stats.frames_rejected - start_stats.frames_rejected,
        "frame_rate_hz": acquired / elapsed_s,
        "frame_rate_hz_configured": config.frame_rate_hz,
        "frames_stored_total": stored,
        "frames_acquired_total": final.frames_seen,
        "truncated": stored != final.frames_seen,
        "seconds": elapsed_s,
        "frame_shape_px": [config.frame_height_px, config.frame_width_px],
        "pixel_size_um": config.pixel_size_um,
    }
