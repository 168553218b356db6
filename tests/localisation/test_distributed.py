"""Multi-process training through torchrun: DistributedDataParallel on gloo, 2 CPU ranks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from patchpilot.localisation.checkpoint import load_checkpoint


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_torchrun_two_cpu_ranks(tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
        "PATCHPILOT_CACHE": str(tmp_path / "cache"),
    }
    command = [
        sys.executable, "-m", "torch.distributed.run",
        "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()),
        "-m", "patchpilot", "train",
        "--preset", "tiny", "--epochs", "1", "--train-frames", "8", "--val-frames", "2",
        "--workers", "1", "--threads", "1", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    data = load_checkpoint(out / "last.pt")
    # 3 stages of 1 epoch each, every one with 8 frames split over 2 ranks.
    assert [h["stage"] for h in data["history"]] == ["encoder", "decoder", "joint"]
    assert data["train_config"]["world_size"] == 2
    assert data["provenance"]["command"].startswith("patchpilot train --preset tiny")
    assert torch.isfinite(
        torch.stack([v.float().sum() for v in data["model_state"].values()])
    ).all()
