"""Labelled frames on disk: 16-bit images plus COCO keypoint annotations.

One annotation per pipette, category ``"pipette_tip"`` with the single keypoint ``"tip"``:
``keypoints = [x, y, v]`` in pixels with patchpilot's convention (origin at the centre of the
top-left pixel, the same as COCO's integer pixel indices); ``v`` is 2 for a tip in the frame
and in focus, 1 in the frame but out of focus, 0 outside the frame (then x = y = 0 and the
true position is in ``tip_px``). Images carry ``pixel_size_um``; annotations carry
``z_offset_um``, ``x_um``/``y_um`` (sample frame) and ``pipette_id``.

:func:`load_coco_keypoints` also reads a lab's own COCO keypoint files (e.g. exported from
CVAT or Label Studio) for training on real frames.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from patchpilot.scene._validate import SceneError
from patchpilot.scene.model import TipTruth, View

__all__ = [
    "ANNOTATION_FILE",
    "CATEGORY",
    "CocoWriter",
    "LabelledImage",
    "load_coco_keypoints",
    "read_image",
    "write_image",
]

ANNOTATION_FILE = "annotations.json"
CATEGORY: dict[str, Any] = {
    "id": 1,
    "name": "pipette_tip",
    "supercategory": "pipette",
    "keypoints": ["tip"],
    "skeleton": [],
}
_BOX_UM = 10.0  # side of the nominal box around a tip (µm)


class LabelledImage(NamedTuple):
    """One labelled frame: where the image is, its labelled tips (n, 2) in pixels, µm/pixel."""

    path: Path
    tips_px: NDArray[np.float64]
    pixel_size_um: float


def write_image(path: Path, image: NDArray[Any]) -> None:
    """Write a uint16 (rows, cols) image as a 16-bit greyscale PNG or TIFF (by suffix).

    Raises
    ------
    SceneError
        Not a 2D uint16 array, or an unsupported suffix.
    """
    if image.ndim != 2 or image.dtype != np.uint16:
        raise SceneError(f"write_image needs a 2D uint16 array, got {image.dtype} {image.shape}")
    if path.suffix.lower() not in (".png", ".tif", ".tiff"):
        raise SceneError(f"write_image writes .png or .tif, not {path.suffix!r} ({path})")
    Image.fromarray(np.ascontiguousarray(image)).save(path)


def read_image(path: Path) -> NDArray[np.uint16]:
    """Read a greyscale PNG/TIFF (8 or 16 bit) as uint16 (rows, cols).

    Raises
    ------
    SceneError
        Missing or unreadable file, or a colour image.
    """
    try:
        with Image.open(path) as handle:
            if handle.mode not in ("I;16", "I;16B", "I;16L", "I", "L"):
                raise SceneError(f"{path}: expected a greyscale image, got mode {handle.mode}")
            data = np.array(handle)
    except OSError as exc:
        raise SceneError(f"{path}: cannot read image ({exc})") from None
    return data.astype(np.uint16)


class CocoWriter:
    """Collects frames and writes ``images/*.png`` plus ``annotations.json`` under ``out_dir``."""

    def __init__(self, out_dir: Path, info: dict[str, Any] | None = None) -> None:
        self.out_dir = Path(out_dir)
        (self.out_dir / "images").mkdir(parents=True, exist_ok=True)
        self.info = dict(info or {})
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []

    def add(
        self,
        name: str,
        image: NDArray[np.uint16],
        truth: Sequence[TipTruth],
        view: View,
        **extra: Any,
    ) -> Path:
        """Write one frame as ``images/<name>.png`` and record its labels; returns the path."""
        path = self.out_dir / "images" / f"{name}.png"
        write_image(path, image)
        image_id = len(self.images) + 1
        self.images.append(
            {
                "id": image_id,
                "file_name": f"images/{name}.png",
                "width": int(image.shape[1]),
                "height": int(image.shape[0]),
                "pixel_size_um": view.pixel_size_um,
                "fov_center_um": list(view.fov_center_um),
                "focus_um": view.focus_um,
                **extra,
            }
        )
        side = _BOX_UM / view.pixel_size_um
        for tip in truth:
            visible = 2 if tip.in_focus else 1
            x, y, v = (tip.x_px, tip.y_px, visible) if tip.in_frame else (0.0, 0.0, 0)
            self.annotations.append(
                {
                    "id": len(self.annotations) + 1,
                    "image_id": image_id,
                    "category_id": CATEGORY["id"],
                    "keypoints": [x, y, v],
                    "num_keypoints": int(v > 0),
                    "bbox": [x - side / 2, y - side / 2, side, side] if v else [0, 0, 0, 0],
                    "area": side * side if v else 0.0,
                    "iscrowd": 0,
                    "pipette_id": tip.pipette_id,
                    "tip_px": [tip.x_px, tip.y_px],
                    "x_um": tip.x_um,
                    "y_um": tip.y_um,
                    "z_offset_um": tip.z_offset_um,
                    "in_frame": tip.in_frame,
                    "in_focus": tip.in_focus,
                }
            )
        return path

    def write(self) -> Path:
        """Write ``annotations.json`` and return its path."""
        document = {
            "info": self.info,
            "images": self.images,
            "annotations": self.annotations,
            "categories": [CATEGORY],
        }
        path = self.out_dir / ANNOTATION_FILE
        path.write_text(json.dumps(document, indent=1), encoding="utf-8")
        return path


def _annotation_file(path: Path) -> Path:
    if path.is_dir():
        candidate = path / ANNOTATION_FILE
        if candidate.is_file():
            return candidate
        found = sorted(path.glob("*.json"))
        if len(found) == 1:
            return found[0]
        raise SceneError(f"{path}: no {ANNOTATION_FILE} (and not exactly one .json) in this folder")
    if not path.is_file():
        raise SceneError(f"{path}: no such file or folder")
    return path


def _tip_index(category: dict[str, Any]) -> int:
    names = category.get("keypoints") or []
    return names.index("tip") if "tip" in names else 0


def load_coco_keypoints(
    path: str | Path, default_pixel_size_um: float | None = None
) -> list[LabelledImage]:
    """Frames and their labelled tips from a COCO keypoint file (or a folder holding one).

    Tips with visibility 0 (unlabelled, outside the frame) are left out. Image paths are
    resolved relative to the JSON file's folder (or its ``images/`` subfolder).

    Parameters
    ----------
    path
        The annotations JSON, or a folder with ``annotations.json`` in it.
    default_pixel_size_um
        Used for images without ``pixel_size_um`` (files from other labelling tools).

    Raises
    ------
    SceneError
        Missing file, malformed JSON, a missing key, a missing image, or an image without a
        pixel size when no default is given; the message names the file and the entry.
    """
    source = _annotation_file(Path(path))
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SceneError(f"{source}: not a readable COCO JSON file ({exc})") from None
    if not isinstance(document, dict):
        raise SceneError(f"{source}: expected a JSON object with images and annotations")
    for key in ("images", "annotations", "categories"):
        if not isinstance(document.get(key), list):
            raise SceneError(f"{source}: missing the {key!r} list")
    categories = {c.get("id"): c for c in document["categories"] if isinstance(c, dict)}
    wanted = [c for c in categories.values() if c.get("name") == CATEGORY["name"]]
    if not wanted and len(categories) == 1:
        wanted = list(categories.values())
    if not wanted:
        names = sorted(str(c.get("name")) for c in categories.values())
        raise SceneError(f"{source}: no 'pipette_tip' category (found {names})")
    tip_index = {c["id"]: _tip_index(c) for c in wanted}

    tips: dict[Any, list[tuple[float, float]]] = {}
    for k, ann in enumerate(document["annotations"]):
        if not isinstance(ann, dict) or "image_id" not in ann or "keypoints" not in ann:
            raise SceneError(f"{source}: annotation {k} lacks image_id or keypoints")
        if ann.get("category_id") not in tip_index:
            continue
        points = ann["keypoints"]
        offset = 3 * tip_index[ann["category_id"]]
        if not isinstance(points, list) or len(points) < offset + 3:
            raise SceneError(f"{source}: annotation {ann.get('id', k)} has malformed keypoints")
        x, y, visibility = (float(v) for v in points[offset : offset + 3])
        if visibility <= 0:
            continue
        if not (math.isfinite(x) and math.isfinite(y)):
            raise SceneError(f"{source}: annotation {ann.get('id', k)} has a non-finite tip")
        tips.setdefault(ann["image_id"], []).append((x, y))

    out = []
    for k, entry in enumerate(document["images"]):
        if not isinstance(entry, dict) or "id" not in entry or "file_name" not in entry:
            raise SceneError(f"{source}: image {k} lacks id or file_name")
        image_path = source.parent / entry["file_name"]
        if not image_path.is_file() and (source.parent / "images" / entry["file_name"]).is_file():
            image_path = source.parent / "images" / entry["file_name"]
        if not image_path.is_file():
            raise SceneError(f"{source}: image {entry['file_name']!r} not found")
        pixel = entry.get("pixel_size_um", default_pixel_size_um)
        if pixel is None:
            raise SceneError(
                f"{source}: image {entry['file_name']!r} has no pixel_size_um; "
                "pass default_pixel_size_um"
            )
        pixel = float(pixel)
        if not (math.isfinite(pixel) and pixel > 0):
            raise SceneError(f"{source}: image {entry['file_name']!r} pixel_size_um {pixel}")
        points = np.array(tips.get(entry["id"], []), dtype=np.float64).reshape(-1, 2)
        out.append(LabelledImage(image_path, points, pixel))
    return out
