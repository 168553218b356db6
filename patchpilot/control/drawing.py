"""Drawing plans: a top view and a side view of every pipette's path (matplotlib PNG)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from patchpilot.config import CapsuleZone, CylinderZone, SafetyConfig
from patchpilot.control.geometry import FieldOfView, PipetteGeometry
from patchpilot.control.planning import PipettePlan

__all__ = ["draw_plans"]

_BODY_DRAWN_UM = 150.0  # how much of each body behind the tip is sketched


def draw_plans(
    plans: Mapping[str, PipettePlan],
    geometries: Mapping[str, PipetteGeometry],
    safety: SafetyConfig,
    view: FieldOfView | None,
    path: str | Path,
) -> Path:
    """Write a PNG with the plans seen from above (x, y) and from the side (x, z).

    Waypoints are numbered as in ``PipettePlan.describe``; moves inside the tissue are solid,
    the others dashed; the body at the final waypoint is sketched; no-go zones and the field
    of view are shaded.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, Rectangle

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure, (top, side) = plt.subplots(1, 2, figsize=(12, 5.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    if view is not None:
        cx, cy = view.center_um
        top.add_patch(
            Rectangle(
                (cx - view.width_um / 2, cy - view.height_um / 2),
                view.width_um,
                view.height_um,
                fill=False,
                linestyle=":",
                color="grey",
                label="field of view",
            )
        )
    for zone in safety.nogo_zones:
        if isinstance(zone, CylinderZone):
            top.add_patch(Circle(zone.center_xy_um, zone.radius_um, color="red", alpha=0.25))
            x = zone.center_xy_um[0]
            low, high = max(zone.z_min_um, -2000.0), min(zone.z_max_um, 2000.0)
            side.add_patch(
                Rectangle(
                    (x - zone.radius_um, low),
                    2 * zone.radius_um,
                    high - low,
                    color="red",
                    alpha=0.15,
                )
            )
        elif isinstance(zone, CapsuleZone):
            for axes, i, j in ((top, 0, 1), (side, 0, 2)):
                axes.plot(
                    [zone.start_um[i], zone.end_um[i]],
                    [zone.start_um[j], zone.end_um[j]],
                    color="red",
                    alpha=0.3,
                    linewidth=2 * zone.radius_um / 10 + 2,
                )
    for index, (name, plan) in enumerate(plans.items()):
        colour = colours[index % len(colours)]
        points = [plan.start_um] + [w.position_um for w in plan.waypoints]
        for number, (start, waypoint) in enumerate(plan.segments(), start=1):
            style = "-" if waypoint.in_tissue else "--"
            end = waypoint.position_um
            top.plot([start[0], end[0]], [start[1], end[1]], style, color=colour)
            side.plot([start[0], end[0]], [start[2], end[2]], style, color=colour)
            top.annotate(str(number), (end[0], end[1]), fontsize=7, color=colour)
            side.annotate(str(number), (end[0], end[2]), fontsize=7, color=colour)
        array = np.array(points)
        top.plot(array[:1, 0], array[:1, 1], "o", color=colour, label=f"{name} start")
        if plan.target_um is not None:
            top.plot(plan.target_um[0], plan.target_um[1], "x", color=colour, markersize=9)
            side.plot(plan.target_um[0], plan.target_um[2], "x", color=colour, markersize=9)
        geometry = geometries.get(name)
        if geometry is not None:
            tip = points[-1]
            back = tip - geometry.axis * _BODY_DRAWN_UM
            top.plot([tip[0], back[0]], [tip[1], back[1]], color=colour, alpha=0.4, linewidth=3)
            side.plot([tip[0], back[0]], [tip[2], back[2]], color=colour, alpha=0.4, linewidth=3)
    side.axhline(safety.tissue_surface_z_um, color="brown", linewidth=1, label="tissue surface")
    side.axhline(
        safety.tissue_surface_z_um + safety.safe_height_um,
        color="grey",
        linestyle=":",
        linewidth=1,
        label="safe height",
    )
    top.set(title="top view", xlabel="x (µm)", ylabel="y (µm)", aspect="equal")
    top.invert_yaxis()  # image rows grow downward
    side.set(title="side view", xlabel="x (µm)", ylabel="z (µm, up)")
    top.legend(fontsize=7, loc="upper right")
    side.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out
