"""ONNX export agrees with the eager network, and a stale export is never used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from patchpilot.localisation import LocaliserError, create_localiser
from patchpilot.localisation.checkpoint import save_checkpoint
from patchpilot.localisation.export import export_onnx, matching_onnx
from patchpilot.localisation.inference import Localiser


@pytest.mark.parametrize("name", ["fast", "tiny"])
def test_onnx_matches_eager(name: str, tmp_path: Path) -> None:
    torch.manual_seed(3)
    overrides = {"input_size_px": 96} if name == "fast" else {}
    model = create_localiser(name, **overrides)
    checkpoint = save_checkpoint(tmp_path / f"{name}.pt", model)
    onnx_path = export_onnx(checkpoint)
    assert matching_onnx(checkpoint) == onnx_path
    eager = Localiser.from_checkpoint(checkpoint, backend="torch")
    runtime = Localiser.from_checkpoint(checkpoint)  # auto picks the matching export
    assert (eager.backend, runtime.backend) == ("torch", "onnx")
    side = model.preset.input_size_px
    tiles = np.random.default_rng(0).normal(size=(3, 1, side, side)).astype(np.float32)
    tips_e, presence_e, _ = eager.run_tiles(tiles)
    tips_o, presence_o, _ = runtime.run_tiles(tiles)
    np.testing.assert_allclose(tips_o, tips_e, atol=0.01)
    np.testing.assert_allclose(presence_o, presence_e, atol=1e-3)
    if model.preset.fully_convolutional:  # other frame sizes go through the same graph
        other = np.random.default_rng(1).normal(size=(1, 1, 64, 160)).astype(np.float32)
        np.testing.assert_allclose(
            runtime.run_tiles(other)[0], eager.run_tiles(other)[0], atol=0.01
        )


def test_stale_export_is_ignored(tmp_path: Path) -> None:
    checkpoint = save_checkpoint(tmp_path / "a.pt", create_localiser("tiny"))
    export_onnx(checkpoint)
    save_checkpoint(checkpoint, create_localiser("tiny"))  # retrained: new bytes
    assert matching_onnx(checkpoint) is None
    assert Localiser.from_checkpoint(checkpoint).backend == "torch"
    with pytest.raises(LocaliserError, match="no matching ONNX export"):
        Localiser.from_checkpoint(checkpoint, backend="onnx")
