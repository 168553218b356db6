"""What the page shows, as JSON-ready values: frames as JPEG, overlays in pixels, cards.

Everything here reads a :class:`~patchpilot.panel.PanelBackend` snapshot and turns it into
plain data; nothing here commands anything.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from patchpilot.config import CapsuleZone, CylinderZone

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from patchpilot.config import MicroscopeConfig, NoGoZone
    from patchpilot.events import Event
    from patchpilot.panel._protocol import LiveFrame, PanelBackend

__all__ = [
    "QUIET_EVENT_KINDS",
    "ImageGeometry",
    "encode_frame",
    "json_object",
    "jsonable",
    "pipette_info",
    "view_payload",
]

QUIET_EVENT_KINDS = frozenset({"localisation", "frame"})
"""Kinds recorded for every frame; left out of the panel's event log (the file has them)."""

_CONTRAST_PERCENTILES = (0.5, 99.8)
_CONTRAST_SAMPLE_PX = 65536  # percentiles from about this many pixels


def jsonable(value: Any) -> Any:
    """Replace NaN and infinities by None (browsers' JSON has neither), tuples by lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    return value


def json_object(value: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`jsonable` of a mapping, typed as a dict."""
    result = jsonable(value)
    assert isinstance(result, dict)
    return result


def encode_frame(image: NDArray[Any], *, max_side_px: int = 1024, quality: int = 80) -> bytes:
    """A JPEG of a 2-D frame, auto-contrasted (percentiles) and shrunk to ``max_side_px``.

    Raises
    ------
    ValueError
        The image is not a non-empty 2-D array.
    """
    array = np.asarray(image)
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"frame must be a non-empty 2-D image, got shape {array.shape}")
    stride = max(1, math.ceil(max(array.shape) / max_side_px))
    if stride > 1:
        array = array[::stride, ::stride]
    sample_stride = max(1, int(math.sqrt(array.size / _CONTRAST_SAMPLE_PX)))
    sample = array[::sample_stride, ::sample_stride].astype(np.float32)
    finite = sample[np.isfinite(sample)]
    low, high = (
        (float(v) for v in np.percentile(finite, _CONTRAST_PERCENTILES))
        if finite.size
        else (0.0, 1.0)
    )
    if not high > low:
        high = low + 1.0
    scaled = (np.nan_to_num(array.astype(np.float32), nan=low) - low) * (255.0 / (high - low))
    pixels = np.clip(scaled, 0.0, 255.0).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@dataclass(frozen=True)
class ImageGeometry:
    """Where the image lies in the sample frame (the newest frame's, or the microscope's)."""

    width_px: int
    height_px: int
    pixel_size_um: float
    fov_center_um: tuple[float, float]
    focus_um: float | None

    @classmethod
    def of(cls, live: LiveFrame | None, microscope: MicroscopeConfig) -> ImageGeometry:
        if live is None:
            return cls(
                microscope.frame_width_px,
                microscope.frame_height_px,
                microscope.pixel_size_um,
                microscope.stage_position_um,
                None,
            )
        frame = live.frame
        return cls(
            frame.width_px,
            frame.height_px,
            frame.pixel_size_um,
            frame.fov_center_um,
            frame.focus_um,
        )

    def to_px(self, x_um: float, y_um: float) -> list[float]:
        cx = (self.width_px - 1) / 2.0
        cy = (self.height_px - 1) / 2.0
        return [
            round((x_um - self.fov_center_um[0]) / self.pixel_size_um + cx, 2),
            round((y_um - self.fov_center_um[1]) / self.pixel_size_um + cy, 2),
        ]

    def to_um(self, x_px: float, y_px: float) -> tuple[float, float]:
        cx = (self.width_px - 1) / 2.0
        cy = (self.height_px - 1) / 2.0
        return (
            self.fov_center_um[0] + (x_px - cx) * self.pixel_size_um,
            self.fov_center_um[1] + (y_px - cy) * self.pixel_size_um,
        )


def _zone_px(zone: NoGoZone, geometry: ImageGeometry) -> dict[str, Any]:
    radius_px = zone.radius_um / geometry.pixel_size_um
    if isinstance(zone, CylinderZone):
        return {
            "kind": "cylinder",
            "name": zone.name,
            "center_px": geometry.to_px(*zone.center_xy_um),
            "radius_px": radius_px,
        }
    assert isinstance(zone, CapsuleZone)
    return {
        "kind": "capsule",
        "name": zone.name,
        "start_px": geometry.to_px(zone.start_um[0], zone.start_um[1]),
        "end_px": geometry.to_px(zone.end_um[0], zone.end_um[1]),
        "radius_px": radius_px,
    }


def pipette_info(backend: PanelBackend) -> list[dict[str, Any]]:
    """Static facts about each pipette the controls need (axes, speeds)."""
    return [
        {
            "name": p.name,
            "n_axes": getattr(p.driver, "n_axes", None) or len(p.soft_limits.min_um),
            "fast_speed_um_s": p.fast_speed_um_s,
            "slow_speed_um_s": p.slow_speed_um_s,
            "max_speed_um_s": p.max_speed_um_s,
            "has_home": p.home_um is not None,
            "yaw_deg": p.yaw_deg,
        }
        for p in backend.config.pipettes
    ]


def view_payload(backend: PanelBackend, live: LiveFrame | None) -> dict[str, Any]:
    """One ``view`` message: coordinator, cards, figures and overlays (pixels of ``live``)."""
    geometry = ImageGeometry.of(live, backend.config.microscope)
    status = backend.status()
    overlays = []
    for overlay in backend.overlays():
        tip = overlay.predicted_tip_um
        target = overlay.target_um
        overlays.append(
            {
                "name": overlay.name,
                "predicted_px": geometry.to_px(tip[0], tip[1]) if tip else None,
                "target_px": geometry.to_px(target[0], target[1]) if target else None,
                "path_px": [geometry.to_px(p[0], p[1]) for p in overlay.path_um],
            }
        )
    found = (
        [{"x_px": d.x_px, "y_px": d.y_px, "confidence": d.confidence} for d in live.detections]
        if live is not None
        else []
    )
    stats = backend.stats()
    frame_info = None
    if live is not None:
        frame_info = {
            "index": live.frame.index,
            "width_px": geometry.width_px,
            "height_px": geometry.height_px,
            "pixel_size_um": geometry.pixel_size_um,
            "focus_um": geometry.focus_um,
            "fov_center_um": list(geometry.fov_center_um),
        }
    return json_object(
        {
            "type": "view",
            "coordinator": backend.coordinator_state(),
            "pipettes": [s.as_dict() for s in status.values()],
            "stats": {
                "frame_rate_hz": stats.frame_rate_hz,
                "localiser_latency_ms": stats.localiser_latency_ms,
                "frames_seen": stats.frames_seen,
            },
            "frame": frame_info,
            "overlay": {
                "found": found,
                "pipettes": overlays,
                "zones": [_zone_px(z, geometry) for z in backend.nogo_zones()],
                "clearance": [
                    {
                        "first": w.first,
                        "second": w.second,
                        "gap_um": w.gap_um,
                        "is_violation": w.is_violation,
                    }
                    for w in backend.clearance_warnings()
                ],
            },
        }
    )


def panel_events(events: Iterable[Event]) -> list[Event]:
    """The events the page lists (per-frame records left out), JSON-safe."""
    return [jsonable(e) for e in events if e.get("kind") not in QUIET_EVENT_KINDS]


__all__ += ["panel_events"]
