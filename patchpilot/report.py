"""The dry-run report: ``report.json`` (the summary) and ``report.png`` (the figure).

The figure has three panels: the last frame with each pipette's planned path, target and
final tip (true and as the localiser saw it); each pipette's true distance to its final point
against time; and each pipette's state against time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from patchpilot.config import RigConfig
    from patchpilot.dryrun import DryRunResult
    from patchpilot.experiment import LiveView

__all__ = ["write_report"]

_STATE_COLOURS = {
    "idle": "#bbbbbb",
    "calibrating": "#8da0cb",
    "ready": "#a6d854",
    "moving": "#66c2a5",
    "approaching": "#fc8d62",
    "correcting": "#e78ac3",
    "at_target": "#1b9e77",
    "paused": "#ffd92f",
    "manual": "#e5c494",
    "fault": "#d62728",
    "stopped": "#444444",
}
_PIPETTE_COLOURS = ["#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628", "#f781bf"]


def write_report(result: DryRunResult, config: RigConfig, last: LiveView | None) -> Path:
    """Write ``report.json`` and ``report.png`` into ``result.out_dir``; returns the folder."""
    out = result.out_dir
    out.mkdir(parents=True, exist_ok=True)
    summary = result.summary()
    summary["rig"] = config.name
    summary["seed"] = config.simulation_seed
    summary["events"] = "events.jsonl"
    summary["figure"] = "report.png"
    (out / "report.json").write_text(json.dumps(summary, indent=2))
    _figure(result, config, last, out / "report.png")
    return out


def _figure(result: DryRunResult, config: RigConfig, last: LiveView | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result.final_state)
    colours = {n: _PIPETTE_COLOURS[i % len(_PIPETTE_COLOURS)] for i, n in enumerate(names)}
    fig = plt.figure(figsize=(15, 5.6), dpi=110)
    grid = fig.add_gridspec(2, 3, width_ratios=[1.05, 1.2, 1.2], height_ratios=[1, 1])
    _frame_panel(fig.add_subplot(grid[:, 0]), result, last, colours)
    _error_panel(fig.add_subplot(grid[0, 1:]), result, colours)
    _state_panel(fig.add_subplot(grid[1, 1:]), result, names)
    ok = sum(result.succeeded.values())
    fig.suptitle(
        f"patchpilot dry-run — rig {config.name}, seed {config.simulation_seed}: "
        f"{ok}/{len(names)} pipettes at target, median final error "
        f"{np.median(list(result.final_error_um.values())):.2f} µm, "
        f"closest bodies {result.min_clearance_um:.1f} µm",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _frame_panel(
    ax: Any, result: DryRunResult, last: LiveView | None, colours: dict[str, str]
) -> None:
    if last is None:
        ax.text(0.5, 0.5, "no frame", ha="center", va="center")
        ax.set_axis_off()
        return
    frame = last.frame
    image = np.asarray(frame.image, dtype=np.float64)
    low, high = np.percentile(image, [1, 99.5])
    ax.imshow(image, cmap="gray", vmin=low, vmax=max(high, low + 1))
    for name, plan in result.plans.items():
        points = [plan.start_um, *[w.position_um for w in plan.waypoints]]
        pixels = np.array([frame.sample_to_pixel(float(p[0]), float(p[1])) for p in points])
        ax.plot(pixels[:, 0], pixels[:, 1], "--", color=colours[name], lw=1, alpha=0.8)
    for name, target in result.targets_um.items():
        x, y = frame.sample_to_pixel(target[0], target[1])
        ax.plot(x, y, "+", color=colours[name], ms=12, mew=1.5)
        ax.annotate(
            name,
            (x, y),
            xytext=(6, -6),
            textcoords="offset points",
            color=colours[name],
            fontsize=9,
            weight="bold",
        )
    for detection in last.detections:
        ax.plot(detection.x_px, detection.y_px, "o", mfc="none", mec="#ffff33", ms=9, mew=1)
    ax.set_xlim(-0.5, frame.width_px - 0.5)
    ax.set_ylim(frame.height_px - 0.5, -0.5)
    ax.set_title(
        f"last frame (#{frame.index}, focus {frame.focus_um:.0f} µm): plans --, targets +, "
        "localised tips o",
        fontsize=9,
    )
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")


def _error_panel(ax: Any, result: DryRunResult, colours: dict[str, str]) -> None:
    if not result.samples:
        ax.text(0.5, 0.5, "no samples", ha="center", va="center")
        return
    times = np.array([s.t_s for s in result.samples])
    for name in result.final_state:
        errors = np.array([s.true_error_um.get(name, np.nan) for s in result.samples])
        ax.semilogy(
            times,
            np.maximum(errors, 0.05),
            color=colours[name],
            label=f"{name}: final {result.final_error_um[name]:.2f} µm",
        )
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    ax.set_ylabel("true distance to final point (µm)")
    ax.set_xlabel("time since approach start (s)")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(True, which="both", alpha=0.3)


def _state_panel(ax: Any, result: DryRunResult, names: list[str]) -> None:
    from matplotlib.patches import Patch

    if not result.samples:
        return
    times = [s.t_s for s in result.samples]
    for row, name in enumerate(names):
        start = 0
        for i in range(1, len(times) + 1):
            state = result.samples[start].states.get(name, "idle")
            if i == len(times) or result.samples[i].states.get(name) != state:
                end = times[i] if i < len(times) else times[-1] + 0.1
                ax.barh(
                    row,
                    end - times[start],
                    left=times[start],
                    height=0.6,
                    color=_STATE_COLOURS.get(state, "#999999"),
                )
                start = i
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("time since approach start (s)")
    seen = {s for sample in result.samples for s in sample.states.values()}
    handles = [Patch(color=c, label=s) for s, c in _STATE_COLOURS.items() if s in seen]
    ax.legend(handles=handles, fontsize=8, ncol=min(6, len(handles)), loc="lower right")
    ax.set_title("state of each pipette", fontsize=9)
