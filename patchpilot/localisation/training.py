"""The training loop shared by every preset: stages, validation, checkpoints, resume, DDP.

Each stage of the preset (the paper: encoder, decoder, joint) trains its parts with AdamW at
its learning rate, halving it when the validation loss has not improved for
``plateau_patience`` epochs (or on a cosine schedule, see ``StageSpec.schedule``); the other
parts are frozen (and kept in eval mode). The run is
sized by epochs (split over stages by their fractions) or by minutes (each stage gets its
share of the wall time). After every epoch: validation loss and accuracy, ``last.pt`` (with
optimizer state, for ``resume``), ``best.pt`` (lowest validation loss), ``history.json`` and
``curves.png``. Under ``torchrun`` (``WORLD_SIZE`` set) the model is wrapped in
DistributedDataParallel and batches are split with a DistributedSampler; rank 0 validates
and writes files.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from patchpilot.localisation._errors import LocaliserError
from patchpilot.localisation.checkpoint import load_checkpoint, load_model, save_checkpoint
from patchpilot.localisation.curves import plot_history
from patchpilot.localisation.dataset import CropDataset
from patchpilot.localisation.evaluation import evaluate
from patchpilot.localisation.inference import Localiser
from patchpilot.localisation.losses import TipTargets, compute_loss
from patchpilot.localisation.output import LocaliserModel
from patchpilot.localisation.presets import LocaliserPreset, StageSpec, create_localiser
from patchpilot.localisation.samples import SampleSet

__all__ = ["TrainConfig", "TrainResult", "cosine_factor", "train"]


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Exactly one of ``epochs`` and ``minutes`` sizes it (neither: the
    preset's epochs). ``resume`` continues from ``out_dir/last.pt``."""

    preset: str
    out_dir: Path
    seed: int = 0
    epochs: int | None = None
    minutes: float | None = None
    batch_size: int | None = None
    num_threads: int = 2
    resume: bool = False
    val_metric_frames: int = 200
    progress: bool = True
    bf16: bool = False
    """Run forward passes under bfloat16 autocast (CPUs with AMX/AVX512-BF16, GPUs)."""
    init_from: Path | None = None
    """Start from the weights of this checkpoint (same preset): fine-tuning, e.g. the shipped
    model on a lab's own images."""
    calibrate: bool = True
    """After training, pick the presence threshold on validation frames (best F1) and store
    it in ``best.pt`` and ``last.pt``."""
    command: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainResult:
    best_path: Path
    last_path: Path
    history: list[dict[str, Any]]
    elapsed_s: float


def train(
    config: TrainConfig, train_set: SampleSet, val_set: SampleSet, provenance: dict[str, Any]
) -> TrainResult:
    """Train ``config.preset`` on ``train_set``, validating on ``val_set``.

    Raises
    ------
    LocaliserError
        Both epochs and minutes given, empty sets, or a resume checkpoint of another preset.
    """
    if config.epochs is not None and config.minutes is not None:
        raise LocaliserError("give either epochs or minutes, not both")
    if len(train_set) == 0 or len(val_set) == 0:
        raise LocaliserError(f"empty data: {len(train_set)} training, {len(val_set)} validation")
    rank, world = _init_distributed()
    torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed + rank)
    device = _device(rank)
    model = create_localiser(config.preset, **config.overrides).to(device)
    preset = model.preset
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    px = preset.pixel_size_um
    train_data = CropDataset(train_set, px, preset.crop_px, augment=True, seed=config.seed)
    val_data = CropDataset(val_set, px, preset.input_size_px, augment=False)
    metric_frames = val_set.subset(range(min(len(val_set), config.val_metric_frames)))
    state = _fresh_state(preset, config)
    if config.init_from is not None and not config.resume:
        initial, _ = load_model(config.init_from, expected_preset=preset.name)
        model.load_state_dict(initial.state_dict())
        state["train_config"]["init_from"] = str(config.init_from)
    if config.resume:
        state = _resume(out / "last.pt", model, preset, state)
    state["train_config"] = {**state["train_config"], "world_size": world}
    batch_size = config.batch_size or preset.batch_size
    run = _Run(config, preset, model, device, rank, world, out, state, provenance)
    start = time.monotonic() - state["elapsed_s"]
    for stage_index in range(state["stage_index"], len(preset.stages)):
        stage = preset.stages[stage_index]
        optimizer, scheduler = run.begin_stage(stage_index)
        wrapped: torch.nn.Module = (
            DistributedDataParallel(model) if world > 1 and _has_trainable(model) else model
        )
        budget = _stage_budget(preset, config, stage_index)
        while True:
            done_epochs = state["epoch_in_stage"]
            if budget.epochs is not None and done_epochs >= budget.epochs:
                break
            if budget.deadline_s is not None and time.monotonic() - start >= budget.deadline_s:
                break
            epoch = state["epoch"]
            train_data.set_epoch(epoch)
            sampler = (
                DistributedSampler(train_data, world, rank, shuffle=True, seed=config.seed)
                if world > 1
                else RandomSampler(
                    train_data, generator=torch.Generator().manual_seed(config.seed + epoch)
                )
            )
            if isinstance(sampler, DistributedSampler):
                sampler.set_epoch(epoch)
            loader = DataLoader(train_data, batch_size=batch_size, sampler=sampler, drop_last=True)
            deadline = None if budget.deadline_s is None else start + budget.deadline_s
            train_loss = run.train_epoch(wrapped, stage, optimizer, loader, deadline, budget, start)
            val_loss = run.validation_loss(val_data, stage, batch_size)
            metrics = run.validation_metrics(metric_frames) if rank == 0 else {}
            if stage.schedule == "plateau":
                scheduler.step(val_loss)
            state["elapsed_s"] = time.monotonic() - start
            run.end_epoch(stage, train_loss, val_loss, metrics, optimizer, scheduler)
        state["stage_index"] = stage_index + 1
        state["epoch_in_stage"] = 0
    state["elapsed_s"] = time.monotonic() - start
    if rank == 0:
        run.save("last.pt", None, None)
        plot_history(state["history"], out / "curves.png")
        if config.calibrate and (out / "best.pt").is_file():
            _calibrate(out, metric_frames, config.num_threads, run)
    if world > 1:
        dist.barrier()
    return TrainResult(out / "best.pt", out / "last.pt", state["history"], state["elapsed_s"])


@dataclass(frozen=True)
class _Budget:
    """A stage's share of the run: whole epochs, or a window of the run's wall time (s)."""

    epochs: int | None
    deadline_s: float | None
    start_s: float = 0.0

    def progress(self, elapsed_s: float, epoch_in_stage: float) -> float:
        """How far through the stage the run is, 0 to 1."""
        if self.deadline_s is not None:
            span = max(self.deadline_s - self.start_s, 1e-9)
            return min(1.0, max(0.0, (elapsed_s - self.start_s) / span))
        return min(1.0, epoch_in_stage / max(self.epochs or 1, 1))


def cosine_factor(progress: float, warmup: float = 0.03, floor: float = 0.01) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine decay to ``floor``."""
    if progress < warmup:
        return max(floor, progress / warmup)
    phase = (progress - warmup) / (1.0 - warmup)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, phase)))


def _stage_budget(preset: LocaliserPreset, config: TrainConfig, index: int) -> _Budget:
    fractions = [s.fraction for s in preset.stages]
    total = sum(fractions)
    if config.minutes is not None:
        ends = np.cumsum(fractions) / total * config.minutes * 60.0
        return _Budget(None, float(ends[index]), float(ends[index - 1]) if index else 0.0)
    epochs = config.epochs if config.epochs is not None else preset.epochs
    return _Budget(_split_epochs(epochs, fractions)[index], None)


def _split_epochs(epochs: int, fractions: list[float]) -> list[int]:
    """Whole epochs per stage in proportion to ``fractions`` (largest remainder), at least
    one each, summing to ``epochs`` when that allows one per stage."""
    shares = np.asarray(fractions, dtype=np.float64) / sum(fractions) * epochs
    counts = np.floor(shares).astype(int)
    for i in np.argsort(-(shares - counts), kind="stable")[: epochs - counts.sum()]:
        counts[i] += 1
    return [max(1, int(c)) for c in counts]


def _fresh_state(preset: LocaliserPreset, config: TrainConfig) -> dict[str, Any]:
    return {
        "stage_index": 0,
        "epoch_in_stage": 0,
        "epoch": 0,
        "elapsed_s": 0.0,
        "images_seen": 0,
        "history": [],
        "best_val_loss": math.inf,
        "optimizer_state": None,
        "scheduler_state": None,
        "train_config": {
            "preset": preset.name,
            "seed": config.seed,
            "epochs": config.epochs,
            "minutes": config.minutes,
            "batch_size": config.batch_size or preset.batch_size,
            "command": config.command,
        },
    }


def _resume(
    path: Path, model: LocaliserModel, preset: LocaliserPreset, state: dict[str, Any]
) -> dict[str, Any]:
    data = load_checkpoint(path)
    if data["preset_name"] != preset.name:
        raise LocaliserError(
            f"cannot resume from {path}: it trains preset {data['preset_name']!r}, "
            f"not {preset.name!r}"
        )
    model.load_state_dict(data["model_state"])
    for key in state:
        if key in data:
            state[key] = data[key]
    return state


class _Run:
    """Mutable pieces of one training run (kept out of ``train`` to keep it readable)."""

    def __init__(
        self,
        config: TrainConfig,
        preset: LocaliserPreset,
        model: LocaliserModel,
        device: torch.device,
        rank: int,
        world: int,
        out: Path,
        state: dict[str, Any],
        provenance: dict[str, Any],
    ) -> None:
        self.config, self.preset, self.model, self.device = config, preset, model, device
        self.rank, self.world, self.out, self.state = rank, world, out, state
        self.provenance = provenance
        self.spec = preset.loss_spec()
        self.frozen: list[torch.nn.Module] = []
        self.last_print = 0.0

    def begin_stage(
        self, index: int
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.ReduceLROnPlateau]:
        stage = self.preset.stages[index]
        parts: dict[str, torch.nn.Module] = {"all": self.model, **self.model.parts()}
        unknown = sorted(set(stage.parts) - set(parts))
        if unknown:
            raise LocaliserError(f"stage {stage.name!r} names unknown part(s) {unknown}")
        for param in self.model.parameters():
            param.requires_grad_(False)
        for name in stage.parts:
            for param in parts[name].parameters():
                param.requires_grad_(True)
        self.frozen = [
            m
            for n, m in parts.items()
            if n not in stage.parts and n != "all" and "all" not in stage.parts
        ]
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=stage.lr, weight_decay=self.preset.weight_decay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=0.5, patience=self.preset.plateau_patience
        )
        if self.state["optimizer_state"] is not None and self.state["epoch_in_stage"] > 0:
            optimizer.load_state_dict(self.state["optimizer_state"])
            scheduler.load_state_dict(self.state["scheduler_state"])
        self.log(
            f"stage {index + 1}/{len(self.preset.stages)} {stage.name}: "
            f"parts {', '.join(stage.parts)}, lr {stage.lr:g}, {len(trainable)} tensors"
        )
        return optimizer, scheduler

    def _targets(self, batch: list[torch.Tensor]) -> TipTargets:
        tips, valid, ignore, ignore_valid = (t.to(self.device) for t in batch[1:5])
        return TipTargets(tips, valid, ignore, ignore_valid)

    def train_epoch(
        self,
        wrapped: torch.nn.Module,
        stage: StageSpec,
        optimizer: torch.optim.Optimizer,
        loader: DataLoader[Any],
        deadline: float | None,
        budget: _Budget,
        start: float,
    ) -> float:
        self.model.train()
        for module in self.frozen:
            module.eval()
        total, count = 0.0, 0
        progress = _Progress(self, len(loader), stage.name, self.state["epoch"])
        for step, batch in enumerate(loader):
            if deadline is not None and self._stop(time.monotonic() >= deadline):
                break
            if stage.schedule == "cosine":
                done = self.state["epoch_in_stage"] + step / max(len(loader), 1)
                factor = cosine_factor(budget.progress(time.monotonic() - start, done))
                for group in optimizer.param_groups:
                    group["lr"] = stage.lr * factor
            with torch.autocast(self.device.type, torch.bfloat16, enabled=self.config.bf16):
                output = wrapped(batch[0].to(self.device))
            parts = compute_loss(output, self._targets(batch), self.spec, stage.terms)
            optimizer.zero_grad(set_to_none=True)
            parts["total"].backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            total += float(parts["total"].detach())
            count += 1
            # Exact training images seen (minute budgets may cut an epoch short).
            self.state["images_seen"] = (
                self.state.get("images_seen", 0) + len(output.tips_px) * self.world
            )
            progress.update(step + 1, total / count, parts)
        progress.close()
        return total / max(count, 1)

    def _stop(self, local: bool) -> bool:
        """All ranks agree to stop when rank 0's clock says so."""
        if self.world == 1:
            return local
        flag = torch.tensor([1.0 if local and self.rank == 0 else 0.0])
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    @torch.no_grad()
    def validation_loss(self, data: CropDataset, stage: StageSpec, batch_size: int) -> float:
        self.model.eval()
        total, count = 0.0, 0
        for batch in DataLoader(data, batch_size=batch_size):
            output = self.model(batch[0].to(self.device))
            parts = compute_loss(output, self._targets(batch), self.spec, stage.terms)
            total += float(parts["total"]) * len(batch[0])
            count += len(batch[0])
        return total / max(count, 1)

    def validation_metrics(self, frames: SampleSet) -> dict[str, Any]:
        self.model.eval()
        localiser = Localiser(self.model, num_threads=self.config.num_threads)
        result = evaluate(localiser, frames, heatmap_iou=False)
        keys = (
            "mean_distance_um",
            "within_3um",
            "within_5um",
            "within_10um",
            "precision",
            "recall",
        )
        return {k: result.overall[k] for k in keys}

    def end_epoch(
        self,
        stage: StageSpec,
        train_loss: float,
        val_loss: float,
        metrics: dict[str, Any],
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau,
    ) -> None:
        state = self.state
        record = {
            "epoch": state["epoch"],
            "stage": stage.name,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_metrics": metrics,
            "lr": optimizer.param_groups[0]["lr"],
            "elapsed_s": round(state["elapsed_s"], 1),
        }
        state["history"].append(record)
        state["epoch"] += 1
        state["epoch_in_stage"] += 1
        self.log(
            f"epoch {record['epoch']} [{stage.name}] train {train_loss:.4f} val {val_loss:.4f} "
            + " ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, float))
            + f" lr {record['lr']:.2g} ({state['elapsed_s'] / 60:.1f} min)"
        )
        if self.rank != 0:
            return
        # The paper's stages optimise different terms, so "best" is judged within the last
        # stage only; earlier stages just keep their latest weights as best.
        is_last_stage = stage is self.preset.stages[-1]
        if not is_last_stage or val_loss < state["best_val_loss"]:
            state["best_val_loss"] = val_loss if is_last_stage else math.inf
            self.save("best.pt", optimizer, scheduler)
        self.save("last.pt", optimizer, scheduler)
        (self.out / "history.json").write_text(json.dumps(state["history"], indent=1))
        plot_history(state["history"], self.out / "curves.png")

    def save(
        self,
        name: str,
        optimizer: torch.optim.Optimizer | None,
        scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau | None,
    ) -> None:
        state = dict(self.state)
        if optimizer is not None and scheduler is not None:
            state["optimizer_state"] = optimizer.state_dict()
            state["scheduler_state"] = scheduler.state_dict()
        save_checkpoint(self.out / name, self.model, provenance=self.provenance, **state)

    def log(self, message: str) -> None:
        if self.rank == 0 and self.config.progress:
            print(message, flush=True)


class _Progress:
    """A rich progress bar with the live loss in a terminal; a line every 30 s otherwise."""

    def __init__(self, run: _Run, total: int, stage: str, epoch: int) -> None:
        self.run, self.total = run, total
        self.enabled = run.rank == 0 and run.config.progress
        self.bar: Any = None
        self.start = time.monotonic()
        if self.enabled and sys.stdout.isatty():
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn(f"epoch {epoch} [{stage}]"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TextColumn("loss {task.fields[loss]:.4f} {task.fields[speed]}"),
                TimeRemainingColumn(),
                transient=True,
            )
            self.task = self.bar.add_task("train", total=total, loss=math.nan, speed="")
            self.bar.start()

    def update(self, step: int, mean_loss: float, parts: dict[str, torch.Tensor]) -> None:
        if not self.enabled:
            return
        rate = step * self.run.world / max(time.monotonic() - self.start, 1e-9)
        if self.bar is not None:
            self.bar.update(self.task, completed=step, loss=mean_loss, speed=f"{rate:.1f} batch/s")
        elif time.monotonic() - self.run.last_print > 30:
            self.run.last_print = time.monotonic()
            terms = " ".join(
                f"{k} {float(v.detach()):.4f}" for k, v in parts.items() if k != "total"
            )
            print(
                f"  step {step}/{self.total} loss {mean_loss:.4f} ({terms}) {rate:.2f} batch/s",
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _calibrate(out: Path, frames: SampleSet, threads: int, run: _Run) -> None:
    """Choose the presence threshold with ``best.pt`` on validation frames; store it in
    both checkpoints."""
    from patchpilot.localisation.calibration import calibrate_threshold, store_threshold

    localiser = Localiser.from_checkpoint(out / "best.pt", backend="torch", num_threads=threads)
    choice = calibrate_threshold(localiser, frames)
    details = {"frames": len(frames), "f1": choice["f1"], "data": frames.provenance}
    for name in ("best.pt", "last.pt"):
        store_threshold(out / name, choice["threshold"], details)
    run.log(f"presence threshold {choice['threshold']:.2f} (validation F1 {choice['f1']:.3f})")


def _has_trainable(model: torch.nn.Module) -> bool:
    return any(p.requires_grad for p in model.parameters())


def _init_distributed() -> tuple[int, int]:
    """(rank, world size); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def _device(rank: int) -> torch.device:
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")
