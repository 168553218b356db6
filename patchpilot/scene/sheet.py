"""Contact sheets: frames side by side for the eye, with tips marked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

__all__ = ["Tile", "contact_sheet", "display_8bit"]

_IN_FOCUS = (60, 230, 90)
_OUT_OF_FOCUS = (250, 200, 40)


@dataclass(frozen=True)
class Tile:
    """One frame on a sheet: the image, its tips (x_px, y_px, in_focus) and a caption."""

    image: NDArray[Any]
    tips: Sequence[tuple[float, float, bool]] = field(default_factory=tuple)
    caption: str = ""


def display_8bit(
    image: NDArray[Any], low_pct: float = 0.5, high_pct: float = 99.8
) -> NDArray[np.uint8]:
    """Stretch an image between two percentiles to 0..255 for viewing."""
    data = np.asarray(image, dtype=np.float32)
    low, high = np.percentile(data, [low_pct, high_pct])
    scale = 255.0 / max(float(high - low), 1e-6)
    out: NDArray[np.uint8] = np.clip((data - low) * scale, 0, 255).astype(np.uint8)
    return out


def contact_sheet(tiles: Sequence[Tile], columns: int = 4, gap_px: int = 4) -> Image.Image:
    """Tiles in a grid (each shown at 1:1 pixels), tips ringed (green: in focus, amber: not),
    captions in the top-left corner. Tiles of different sizes get cells of the largest."""
    if not tiles:
        raise ValueError("contact_sheet needs at least one tile")
    columns = max(1, min(columns, len(tiles)))
    rows = (len(tiles) + columns - 1) // columns
    cell_h = max(t.image.shape[0] for t in tiles)
    cell_w = max(t.image.shape[1] for t in tiles)
    sheet = Image.new(
        "RGB",
        (columns * cell_w + (columns + 1) * gap_px, rows * cell_h + (rows + 1) * gap_px),
        (20, 20, 20),
    )
    draw = ImageDraw.Draw(sheet)
    for k, tile in enumerate(tiles):
        left = gap_px + (k % columns) * (cell_w + gap_px)
        top = gap_px + (k // columns) * (cell_h + gap_px)
        sheet.paste(Image.fromarray(display_8bit(tile.image)).convert("RGB"), (left, top))
        for x, y, in_focus in tile.tips:
            cx, cy = left + x, top + y
            colour = _IN_FOCUS if in_focus else _OUT_OF_FOCUS
            draw.ellipse((cx - 6, cy - 6, cx + 6, cy + 6), outline=colour, width=1)
            draw.point((cx, cy), fill=colour)
        if tile.caption:
            draw.rectangle((left, top, left + 6 * len(tile.caption) + 4, top + 12), fill=(0, 0, 0))
            draw.text((left + 2, top + 1), tile.caption, fill=(235, 235, 235))
    return sheet
