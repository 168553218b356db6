"""A PNG of the training curves: losses, validation accuracy and learning rate per epoch."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_history"]


def plot_history(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Draw train/validation loss, validation accuracy within 3/5/10 µm and the learning
    rate against epoch, with stage boundaries marked; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    loss_ax, acc_ax, lr_ax = axes
    loss_ax.plot(epochs, [h["train_loss"] for h in history], label="train")
    loss_ax.plot(epochs, [h["val_loss"] for h in history], label="validation")
    loss_ax.set_yscale("log")
    loss_ax.set_title("loss")
    for key in ("within_3um", "within_5um", "within_10um"):
        values = [h.get("val_metrics", {}).get(key) for h in history]
        if any(v is not None for v in values):
            acc_ax.plot(epochs, values, label=key.replace("within_", "≤ ").replace("um", " µm"))
    acc_ax.set_ylim(0, 1.02)
    acc_ax.set_title("validation accuracy")
    lr_ax.plot(epochs, [h["lr"] for h in history])
    lr_ax.set_yscale("log")
    lr_ax.set_title("learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
        for before, after in itertools.pairwise(history):
            if before["stage"] != after["stage"]:
                ax.axvline(after["epoch"] - 0.5, color="grey", lw=0.8, ls="--")
    loss_ax.legend()
    acc_ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
