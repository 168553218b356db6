"""What the rig commands share: loading a rig file, opening an experiment, Ctrl-C = STOP ALL.

Heavy imports (the experiment pulls in torch) happen inside the functions so ``--help`` is fast.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from patchpilot.config import ConfigError, RigConfig, load_config

if TYPE_CHECKING:
    from patchpilot.experiment import Experiment

__all__ = ["load_rig", "open_experiment", "stop_all_on_ctrl_c"]


def load_rig(path: Path) -> RigConfig:
    """The rig file, or exit 2 with the message naming what is wrong."""
    try:
        return load_config(path)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def open_experiment(
    rig: RigConfig, folder: Path, *, record: bool, observe_only: bool
) -> Experiment:
    """The experiment of a rig, or exit 2 with why it could not be built."""
    from patchpilot.experiment import Experiment, ExperimentError

    try:
        return Experiment(rig, out_dir=folder, record=record, observe_only=observe_only)
    except ExperimentError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@contextmanager
def stop_all_on_ctrl_c(experiment: Experiment) -> Iterator[threading.Event]:
    """While inside, Ctrl-C stops every manipulator at once and sets the yielded event."""
    interrupted = threading.Event()

    def on_interrupt(signum: int, frame: Any) -> None:
        experiment.stop_all()
        interrupted.set()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)
