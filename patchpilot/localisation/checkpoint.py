"""Checkpoints: the network's weights plus everything needed to trust and reuse them.

A checkpoint is a ``torch.save`` dict, loaded with ``weights_only=True`` (no code runs on
load). It carries the full preset (so it rebuilds itself), the input size, the pixel size
(µm) the model expects, data provenance (seed ranges, generator version, command line), and
for resuming the optimiser/scheduler state, stage, epoch and history.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from patchpilot.localisation._errors import LocaliserError
from patchpilot.localisation.output import LocaliserModel
from patchpilot.localisation.presets import (
    LocaliserPreset,
    create_localiser,
    preset_from_dict,
    preset_to_dict,
)

__all__ = ["FORMAT", "FORMAT_VERSION", "load_checkpoint", "load_model", "save_checkpoint"]

FORMAT = "patchpilot-localiser"
FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, model: LocaliserModel, **state: Any) -> Path:
    """Write ``model`` and ``state`` (optimizer, epoch, provenance, metrics...) atomically.

    The file is written next to its destination and renamed, so a crash never leaves a
    truncated checkpoint under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    preset = model.preset
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "preset_name": preset.name,
        "preset": preset_to_dict(preset),
        "input_size_px": preset.input_size_px,
        "pixel_size_um": preset.pixel_size_um,
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **state,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and sanity-check a checkpoint file.

    Raises
    ------
    LocaliserError
        Missing file, unreadable/corrupt/truncated file, or not a patchpilot localiser
        checkpoint (the message names the file and the problem).
    """
    path = Path(path)
    if not path.is_file():
        raise LocaliserError(f"checkpoint {path}: file not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for damaged files
        raise LocaliserError(
            f"checkpoint {path}: cannot be read (corrupt or truncated?): {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise LocaliserError(f"checkpoint {path}: not a patchpilot localiser checkpoint")
    if data.get("format_version") != FORMAT_VERSION:
        raise LocaliserError(
            f"checkpoint {path}: format version {data.get('format_version')} is not supported "
            f"(expected {FORMAT_VERSION})"
        )
    for key in ("preset", "model_state", "pixel_size_um", "input_size_px"):
        if key not in data:
            raise LocaliserError(f"checkpoint {path}: missing key {key!r}")
    return dict(data)


def load_model(
    path: str | Path, expected_preset: str | None = None
) -> tuple[LocaliserModel, dict[str, Any]]:
    """Rebuild the network stored in a checkpoint and load its weights.

    Parameters
    ----------
    path
        Checkpoint file.
    expected_preset
        When given, the checkpoint must have been trained with this preset.

    Raises
    ------
    LocaliserError
        As :func:`load_checkpoint`, plus a preset mismatch, an inconsistent preset/pixel
        size, or weights whose keys or shapes do not fit the network (names the keys).
    """
    data = load_checkpoint(path)
    preset: LocaliserPreset = preset_from_dict(data["preset"])
    if expected_preset is not None and preset.name != expected_preset:
        raise LocaliserError(
            f"checkpoint {path}: trained with preset {preset.name!r}, expected {expected_preset!r}"
        )
    if (
        float(data["pixel_size_um"]) != preset.pixel_size_um
        or int(data["input_size_px"]) != preset.input_size_px
    ):
        raise LocaliserError(f"checkpoint {path}: pixel size or input size disagrees with preset")
    model = create_localiser(preset)
    state = data["model_state"]
    if not isinstance(state, dict):
        raise LocaliserError(f"checkpoint {path}: model_state is not a state dict")
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise LocaliserError(
            f"checkpoint {path}: weights do not fit preset {preset.name!r}: "
            f"missing {_few(missing)}, unexpected {_few(unexpected)}"
        )
    wrong = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if wrong:
        raise LocaliserError(
            f"checkpoint {path}: weights do not fit preset {preset.name!r}: shape mismatch in "
            f"{_few(wrong)}"
        )
    model.load_state_dict(state)
    model.eval()
    return model, data


def _few(keys: list[str], limit: int = 3) -> str:
    if not keys:
        return "none"
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more
