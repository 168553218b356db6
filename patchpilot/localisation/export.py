"""ONNX export of a trained localiser, and finding the export that belongs to a checkpoint.

The exported graph takes a (B, 1, S, S) float32 batch named ``image`` and returns ``tips_px``
(B, K, 2) and ``presence_logit`` (B, K), i.e. the same slots as the eager network including
peak decoding. The ONNX file records the SHA-256 of the checkpoint it came from, so a stale
export is never used for a retrained checkpoint.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from patchpilot.localisation.checkpoint import load_model
from patchpilot.localisation.output import LocaliserModel

__all__ = ["export_onnx", "file_sha256", "matching_onnx", "ship_weights"]

OPSET = 17


class _Slots(nn.Module):
    """The network as a plain tensor-to-tuple function (what the exporter needs)."""

    def __init__(self, model: LocaliserModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(image)
        return out.tips_px, out.presence_logit


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_onnx(checkpoint: str | Path, out: str | Path | None = None) -> Path:
    """Export a checkpoint's network to ONNX (default: next to it, ``<name>.onnx``).

    Raises
    ------
    LocaliserError
        If the checkpoint cannot be loaded (see :func:`load_model`).
    """
    import onnx

    checkpoint = Path(checkpoint)
    model, _ = load_model(checkpoint)
    out = checkpoint.with_suffix(".onnx") if out is None else Path(out)
    side = model.preset.input_size_px
    example = torch.zeros(1, 1, side, side)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Slots(model).eval(),
            (example,),
            buffer,  # type: ignore[arg-type]  # file-like objects are accepted
            input_names=["image"],
            output_names=["tips_px", "presence_logit"],
            dynamic_axes=_dynamic_axes(model.preset.fully_convolutional),
            opset_version=OPSET,
            dynamo=False,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    for key, value in (
        ("checkpoint_sha256", file_sha256(checkpoint)),
        ("preset", model.preset.name),
        ("pixel_size_um", repr(model.preset.pixel_size_um)),
    ):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(out))
    return out


def _dynamic_axes(fully_convolutional: bool) -> dict[str, dict[int, str]]:
    image = {0: "batch", 2: "rows", 3: "cols"} if fully_convolutional else {0: "batch"}
    return {"image": image, "tips_px": {0: "batch"}, "presence_logit": {0: "batch"}}


def matching_onnx(checkpoint: str | Path) -> Path | None:
    """The ``<name>.onnx`` next to ``checkpoint`` if it was exported from this exact file."""
    import onnx

    checkpoint = Path(checkpoint)
    candidate = checkpoint.with_suffix(".onnx")
    if not candidate.is_file():
        return None
    try:
        proto = onnx.load(str(candidate), load_external_data=False)
    except Exception:
        return None
    meta = {p.key: p.value for p in proto.metadata_props}
    return candidate if meta.get("checkpoint_sha256") == file_sha256(checkpoint) else None


def _initial_training(init_from: str | None) -> dict[str, Any] | None:
    """Command and training time of the checkpoint a fine-tuned model started from (if it is
    still on disk), so that the card tells the whole training."""
    if not init_from:
        return None
    from patchpilot.localisation._errors import LocaliserError
    from patchpilot.localisation.checkpoint import load_checkpoint

    info: dict[str, Any] = {"checkpoint": init_from}
    try:
        initial = load_checkpoint(init_from)
    except LocaliserError:
        return info
    info["command"] = initial.get("provenance", {}).get("command")
    info["training_minutes"] = round(float(initial.get("elapsed_s", 0.0)) / 60.0, 1)
    info["data"] = {k: initial.get("provenance", {}).get(k) for k in ("train", "val")}
    return info


def ship_weights(
    checkpoint: str | Path,
    weights_dir: str | Path,
    name: str,
    metrics: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Install a checkpoint as shipped weights: ``<name>.pt`` (without optimizer state),
    its ONNX export ``<name>.onnx`` and a JSON card ``<name>.json`` (preset, pixel size,
    command, seed, data, training time, metrics).

    Raises
    ------
    LocaliserError
        If the checkpoint cannot be loaded.
    """
    from patchpilot.localisation.checkpoint import load_checkpoint, save_checkpoint

    data = load_checkpoint(checkpoint)
    model, _ = load_model(checkpoint)
    weights_dir = Path(weights_dir)
    keep = (
        "provenance",
        "train_config",
        "history",
        "elapsed_s",
        "epoch",
        "best_val_loss",
        "presence_threshold",  # chosen on validation: the shipped model must keep it
    )
    target = save_checkpoint(
        weights_dir / f"{name}.pt", model, **{k: data[k] for k in keep if k in data}
    )
    onnx_path = export_onnx(target)
    provenance = data.get("provenance", {})
    card = {
        "name": name,
        "preset": model.preset.name,
        "pixel_size_um": model.preset.pixel_size_um,
        "input_size_px": model.preset.input_size_px,
        "description": model.preset.description,
        "command": provenance.get("command"),
        "seed": data.get("train_config", {}).get("seed"),
        "data": {k: provenance.get(k) for k in ("train", "val")},
        "data_seconds": provenance.get("data_seconds"),
        "training_minutes": round(float(data.get("elapsed_s", 0.0)) / 60.0, 1),
        "epochs": data.get("epoch"),
        "presence_threshold": data.get("presence_threshold"),
        "initialised_from": _initial_training(data.get("train_config", {}).get("init_from")),
        "files": {
            "checkpoint": target.name,
            "checkpoint_sha256": file_sha256(target),
            "onnx": onnx_path.name,
            "bytes": target.stat().st_size + onnx_path.stat().st_size,
        },
        "metrics": metrics or {},
    }
    card_path = weights_dir / f"{name}.json"
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return {"checkpoint": target, "onnx": onnx_path, "card": card_path}
