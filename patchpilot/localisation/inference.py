"""``Localiser``: find the pipette tips in any 2D frame with a trained network.

A frame of any size and pixel size is checked, resampled to the model's pixel size,
normalised, cut into model-sized tiles with overlap (padded when smaller), run through the
network (torch eager or ONNX Runtime), and the tips are mapped back to frame pixels, merged
across tiles and returned as :class:`patchpilot.types.TipDetection` (``x_um = x_px *
pixel_size_um``, origin at the top-left pixel centre).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray

from patchpilot.localisation._errors import LocaliserError
from patchpilot.localisation.checkpoint import load_model
from patchpilot.localisation.output import LocaliserModel
from patchpilot.localisation.preprocess import (
    check_frame,
    check_pixel_size,
    from_scaled_px,
    normalise,
    rescale_to_model,
)
from patchpilot.localisation.presets import LocaliserPreset
from patchpilot.localisation.tiling import TileGrid, merge_detections
from patchpilot.types import TipDetection

__all__ = ["WEIGHTS_DIR", "Inference", "Localiser", "PreparedFrame"]

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
DEFAULT_WEIGHTS = "fast"
Backend = Literal["auto", "torch", "onnx"]


@dataclass(frozen=True)
class Inference:
    """Detections per frame and, when asked for, heatmaps per frame ((T, h, w) or None)."""

    detections: list[list[TipDetection]]
    heatmaps: list[NDArray[np.float32] | None]


@dataclass(frozen=True)
class PreparedFrame:
    """A frame after resampling and normalisation, cut into tiles."""

    tiles: NDArray[np.float32]
    grid: TileGrid
    scale: tuple[float, float]
    pixel_size_um: float


class Localiser:
    """Tip finder around one trained network.

    Parameters
    ----------
    model
        The network (eval mode is set here).
    num_threads
        Threads for torch / ONNX Runtime (default 2; torch's setting is process-wide).
    confidence_threshold
        Slots whose presence probability is below this are not tips (default: the one
        stored in the checkpoint, else the preset's).
    onnx_path
        Run this ONNX export of ``model`` through ONNX Runtime instead of torch.
    min_overlap_px
        Minimum overlap of neighbouring tiles (model pixels); default a quarter tile.
    merge_radius_px
        Detections closer than this (model pixels) are one tip (default 6).
    """

    def __init__(
        self,
        model: LocaliserModel,
        *,
        num_threads: int = 2,
        confidence_threshold: float | None = None,
        onnx_path: str | Path | None = None,
        min_overlap_px: int | None = None,
        merge_radius_px: float = 6.0,
        info: dict[str, Any] | None = None,
    ) -> None:
        if num_threads < 1:
            raise LocaliserError(f"num_threads must be at least 1, got {num_threads}")
        self.model = model.eval()
        self.preset: LocaliserPreset = model.preset
        self.num_threads = num_threads
        threshold = (
            self.preset.presence_threshold if confidence_threshold is None else confidence_threshold
        )
        if not 0.0 < threshold < 1.0:
            raise LocaliserError(f"confidence_threshold must be in (0, 1), got {threshold}")
        self.confidence_threshold = float(threshold)
        self.min_overlap_px = (
            self.preset.input_size_px // 4 if min_overlap_px is None else min_overlap_px
        )
        self.merge_radius_px = merge_radius_px
        self.info: dict[str, Any] = dict(info or {})
        self.last_latency_ms: float = float("nan")
        self._session: Any = None
        if onnx_path is not None:
            self._session = _onnx_session(Path(onnx_path), num_threads)
        else:
            torch.set_num_threads(num_threads)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        *,
        preset: str | None = None,
        backend: Backend = "auto",
        num_threads: int = 2,
        confidence_threshold: float | None = None,
    ) -> Localiser:
        """Load a checkpoint written by ``patchpilot train``.

        ``backend="auto"`` uses ONNX Runtime when an export of this very checkpoint lies next
        to it (``<name>.onnx``), else torch.

        Raises
        ------
        LocaliserError
            Missing, corrupt or truncated file; wrong preset; weights not fitting the preset;
            ``backend="onnx"`` without a matching export.
        """
        path = Path(path)
        model, data = load_model(path, expected_preset=preset)
        onnx_path: Path | None = None
        if backend != "torch":
            from patchpilot.localisation.export import matching_onnx

            onnx_path = matching_onnx(path)
            if onnx_path is None and backend == "onnx":
                raise LocaliserError(f"checkpoint {path}: no matching ONNX export next to it")
        info = {
            "checkpoint": str(path),
            "backend": "onnx" if onnx_path is not None else "torch",
            "provenance": data.get("provenance", {}),
        }
        if confidence_threshold is None and "presence_threshold" in data:
            # Chosen on the validation split after training (see calibration.py).
            confidence_threshold = float(data["presence_threshold"])
        return cls(
            model,
            num_threads=num_threads,
            confidence_threshold=confidence_threshold,
            onnx_path=onnx_path,
            info=info,
        )

    @classmethod
    def from_pretrained(cls, name: str | None = None, **kwargs: Any) -> Localiser:
        """The weights shipped in ``patchpilot/weights`` (no argument: the default, ``fast``).

        Raises
        ------
        LocaliserError
            If no shipped weights have that name.
        """
        name = name or DEFAULT_WEIGHTS
        path = WEIGHTS_DIR / f"{name}.pt"
        if not path.is_file():
            shipped = sorted(p.stem for p in WEIGHTS_DIR.glob("*.pt"))
            raise LocaliserError(
                f"no shipped weights named {name!r} in {WEIGHTS_DIR}; shipped: {shipped or 'none'}"
            )
        return cls.from_checkpoint(path, **kwargs)

    @property
    def pixel_size_um(self) -> float:
        """The pixel size (µm) the network works at; frames are resampled to it."""
        return self.preset.pixel_size_um

    @property
    def backend(self) -> str:
        return "onnx" if self._session is not None else "torch"

    # ------------------------------------------------------------------ inference
    def localise(self, frame: Any, pixel_size_um: float) -> list[TipDetection]:
        """Every pipette tip found in one frame.

        Parameters
        ----------
        frame
            2D integer or float array (rows, columns), any size.
        pixel_size_um
            Size of one frame pixel in µm (> 0).

        Raises
        ------
        LocaliserError
            Wrong ndim, empty, non-numeric, NaN/inf frame; non-positive pixel size.
        """
        return self.localise_batch([frame], pixel_size_um)[0]

    def localise_batch(
        self, frames: Sequence[Any], pixel_size_um: float | Sequence[float]
    ) -> list[list[TipDetection]]:
        """:meth:`localise` for several frames in one network call; ``last_latency_ms`` is the
        whole call's wall time."""
        start = time.perf_counter()
        is_many = isinstance(pixel_size_um, (Sequence, np.ndarray)) and not isinstance(
            pixel_size_um, str
        )
        sizes: list[Any] = (
            list(pixel_size_um)  # type: ignore[arg-type]
            if is_many
            else [pixel_size_um] * len(frames)
        )
        if len(sizes) != len(frames):
            raise LocaliserError(f"{len(frames)} frames but {len(sizes)} pixel sizes")
        prepared = [
            self.prepare(frame, size, name=f"frame {i}" if len(frames) > 1 else "frame")
            for i, (frame, size) in enumerate(zip(frames, sizes, strict=True))
        ]
        results = self.infer(prepared).detections
        self.last_latency_ms = (time.perf_counter() - start) * 1e3
        return results

    def infer(self, prepared: Sequence[PreparedFrame], with_heatmap: bool = False) -> Inference:
        """Run prepared frames through the network in one batch (exposed for evaluation).

        ``with_heatmap`` also returns each frame's (T, h, w) heatmap probabilities when the
        network has a heatmap (computed with torch even under ONNX Runtime).
        """
        if not prepared:
            return Inference([], [])
        # Frames whose tiles share a shape go through the network together.
        outputs: dict[int, tuple[Any, Any, Any]] = {}
        for shape in {p.grid.shape for p in prepared}:
            members = [i for i, p in enumerate(prepared) if p.grid.shape == shape]
            tiles = np.concatenate([prepared[i].tiles for i in members])[:, None]
            tips, presence, heatmap = self.run_tiles(tiles, with_heatmap=with_heatmap)
            first = 0
            for i in members:
                last = first + len(prepared[i].tiles)
                heat = None if heatmap is None else heatmap[first:last]
                outputs[i] = (tips[first:last], presence[first:last], heat)
                first = last
        detections = [
            self._collect(p, outputs[i][0], outputs[i][1]) for i, p in enumerate(prepared)
        ]
        return Inference(detections, [outputs[i][2] for i in range(len(prepared))])

    def prepare(self, frame: Any, pixel_size_um: float, name: str = "frame") -> PreparedFrame:
        """Check, resample, normalise and tile one frame (exposed for evaluation).

        Raises
        ------
        LocaliserError
            As :meth:`localise`.
        """
        image = check_frame(frame, name)
        size_um = check_pixel_size(pixel_size_um)
        scaled, scale = rescale_to_model(image, size_um, self.pixel_size_um)
        scaled = normalise(scaled, self.preset.normalisation)
        preset = self.preset
        side = preset.tile_px or preset.input_size_px
        multiple = 32 if preset.fully_convolutional else None
        rows, cols = scaled.shape
        grid = TileGrid.for_shape(rows, cols, side, self.min_overlap_px, multiple)
        return PreparedFrame(grid.cut(scaled), grid, scale, size_um)

    def run_tiles(
        self, tiles: NDArray[np.float32], with_heatmap: bool = False
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float32] | None]:
        """Network on a (T, 1, S, S) stack: tips (T, K, 2) in tile pixels, presence logits
        (T, K), and (T, h, w) heatmap probabilities if asked for and available."""
        tensor = torch.from_numpy(np.ascontiguousarray(tiles))
        heatmap: NDArray[np.float32] | None = None
        if self._session is not None:
            tips, presence = self._session.run(None, {"image": np.ascontiguousarray(tiles)})
            if with_heatmap:
                with torch.inference_mode():
                    logit = self.model(tensor).heatmap_logit
                heatmap = None if logit is None else torch.sigmoid(logit)[:, 0].numpy()
            return np.asarray(tips, np.float64), np.asarray(presence, np.float64), heatmap
        with torch.inference_mode():
            out = self.model(tensor)
        if with_heatmap and out.heatmap_logit is not None:
            heatmap = torch.sigmoid(out.heatmap_logit)[:, 0].float().numpy()
        return out.tips_px.double().numpy(), out.presence_logit.double().numpy(), heatmap

    def _collect(
        self, prepared: PreparedFrame, tips: NDArray[np.float64], presence: NDArray[np.float64]
    ) -> list[TipDetection]:
        confidence = 1.0 / (1.0 + np.exp(-np.clip(presence, -60.0, 60.0)))
        points: list[NDArray[np.float64]] = []
        scores: list[NDArray[np.float64]] = []
        for index, (x0, y0) in enumerate(prepared.grid.origins):
            keep = confidence[index] >= self.confidence_threshold
            xy = tips[index][keep] + np.array([x0, y0], dtype=np.float64)
            owned = prepared.grid.owned(index, xy)
            points.append(xy[owned])
            scores.append(confidence[index][keep][owned])
        xy_all = np.concatenate(points) if points else np.zeros((0, 2))
        score_all = np.concatenate(scores) if scores else np.zeros(0)
        kept = merge_detections(xy_all, score_all, self.merge_radius_px)
        xy_frame = from_scaled_px(xy_all[kept], prepared.scale)
        size = prepared.pixel_size_um
        return [
            TipDetection(
                x_px=float(x),
                y_px=float(y),
                x_um=float(x * size),
                y_um=float(y * size),
                confidence=float(c),
            )
            for (x, y), c in zip(xy_frame, score_all[kept], strict=True)
        ]


def _onnx_session(path: Path, num_threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise LocaliserError(f"ONNX model {path}: cannot be loaded: {exc}") from None
