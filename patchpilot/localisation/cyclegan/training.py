"""Training the CycleGAN between in vivo and clean crops, and its checkpoint format.

Per step (Zhu et al. 2017): G maps in vivo -> clean, F clean -> in vivo; the generators
minimise the least-squares (LSGAN) adversarial losses against the two PatchGAN
discriminators, plus ``lambda_cycle`` x the L1 cycle losses |F(G(x)) - x| and |G(F(y)) - y|,
plus ``lambda_identity`` x ``lambda_cycle`` x the L1 identity losses |G(y) - y| and
|F(x) - x|; each discriminator minimises the LSGAN loss on real crops and on fakes drawn
from a 50-image history pool. Adam (2e-4, betas 0.5/0.999); the rate is constant for the
first half of the budget and decays linearly to zero over the second half.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from patchpilot.localisation._errors import LocaliserError
from patchpilot.localisation.cyclegan.data import DomainFrames
from patchpilot.localisation.cyclegan.networks import (
    PatchDiscriminator,
    ResnetGenerator,
    init_weights,
)

__all__ = [
    "FORMAT",
    "GanConfig",
    "GanResult",
    "ImagePool",
    "build_networks",
    "cyclegan_losses",
    "load_cyclegan",
    "train_cyclegan",
]

FORMAT = "patchpilot-cyclegan"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class GanConfig:
    """One CycleGAN run. Exactly one of ``minutes`` and ``steps`` sizes it."""

    out_dir: Path
    minutes: float | None = 15.0
    steps: int | None = None
    batch_size: int = 8
    crop_px: int = 64
    pixel_size_um: float = 1.0
    ngf: int = 16
    n_blocks: int = 4
    ndf: int = 16
    n_layers: int = 2
    lr: float = 2e-4
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    jitter_px: float = 8.0
    random_fraction: float = 0.2
    seed: int = 0
    num_threads: int = 2
    log_every_s: float = 30.0
    progress: bool = True
    command: str = ""

    def network_config(self) -> dict[str, Any]:
        return {
            "ngf": self.ngf,
            "n_blocks": self.n_blocks,
            "ndf": self.ndf,
            "n_layers": self.n_layers,
            "crop_px": self.crop_px,
            "pixel_size_um": self.pixel_size_um,
        }


@dataclass
class GanResult:
    path: Path
    steps: int
    images_seen: int
    elapsed_s: float
    history: list[dict[str, float]] = field(default_factory=list)


class ImagePool:
    """CycleGAN's history of generated images: half of each batch shown to a discriminator
    comes from earlier generator states, which damps oscillation."""

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size = size
        self.rng = rng
        self.images: list[torch.Tensor] = []

    def query(self, batch: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return batch
        out = []
        for image in batch.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif self.rng.random() < 0.5:
                index = int(self.rng.integers(self.size))
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)


def build_networks(config: dict[str, Any]) -> dict[str, nn.Module]:
    """G (in vivo -> clean), F (clean -> in vivo) and their discriminators."""
    nets: dict[str, nn.Module] = {
        "G": ResnetGenerator(int(config["ngf"]), int(config["n_blocks"])),
        "F": ResnetGenerator(int(config["ngf"]), int(config["n_blocks"])),
        "D_clean": PatchDiscriminator(int(config["ndf"]), int(config["n_layers"])),
        "D_vivo": PatchDiscriminator(int(config["ndf"]), int(config["n_layers"])),
    }
    for net in nets.values():
        init_weights(net)
    return nets


def _lsgan(logits: torch.Tensor, real: bool) -> torch.Tensor:
    return F.mse_loss(logits, torch.full_like(logits, 1.0 if real else 0.0))


def cyclegan_losses(
    nets: dict[str, nn.Module],
    vivo: torch.Tensor,
    clean: torch.Tensor,
    lambda_cycle: float,
    lambda_identity: float,
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Generator loss terms (``"total"`` is their weighted sum) and the two fakes."""
    g, f = nets["G"], nets["F"]
    fake_clean = g(vivo)
    fake_vivo = f(clean)
    terms = {
        "adv": _lsgan(nets["D_clean"](fake_clean), True) + _lsgan(nets["D_vivo"](fake_vivo), True),
        "cycle": F.l1_loss(f(fake_clean), vivo) + F.l1_loss(g(fake_vivo), clean),
    }
    total = terms["adv"] + lambda_cycle * terms["cycle"]
    if lambda_identity > 0:
        terms["identity"] = F.l1_loss(g(clean), clean) + F.l1_loss(f(vivo), vivo)
        total = total + lambda_identity * lambda_cycle * terms["identity"]
    terms["total"] = total
    return terms, fake_clean, fake_vivo


def _rate_factor(progress: float) -> float:
    """1 for the first half of the run, then linearly down to 0."""
    return 1.0 if progress < 0.5 else max(0.0, 1.0 - (progress - 0.5) / 0.5)


def train_cyclegan(
    config: GanConfig, vivo: DomainFrames, clean: DomainFrames, provenance: dict[str, Any]
) -> GanResult:
    """Train the CycleGAN on unpaired crops; write ``cyclegan.pt``, ``history.json`` and
    ``samples.png`` to ``config.out_dir``.

    Raises
    ------
    LocaliserError
        Neither or both of ``minutes`` and ``steps``, or a non-positive budget.
    """
    if (config.minutes is None) == (config.steps is None):
        raise LocaliserError("give exactly one of minutes and steps")
    if (config.minutes is not None and config.minutes <= 0) or (
        config.steps is not None and config.steps <= 0
    ):
        raise LocaliserError("the training budget must be positive")
    torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    nets = build_networks(config.network_config())
    gens = list(nets["G"].parameters()) + list(nets["F"].parameters())
    discs = list(nets["D_clean"].parameters()) + list(nets["D_vivo"].parameters())
    opt_g = torch.optim.Adam(gens, lr=config.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discs, lr=config.lr, betas=(0.5, 0.999))
    pools = {"clean": ImagePool(config.pool_size, rng), "vivo": ImagePool(config.pool_size, rng)}
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    history: list[dict[str, float]] = []
    sums: dict[str, float] = {}
    count = 0
    step = 0
    start = last_log = time.monotonic()
    budget_s = None if config.minutes is None else config.minutes * 60.0
    for net in nets.values():
        net.train()
    while True:
        elapsed = time.monotonic() - start
        progress = elapsed / budget_s if budget_s is not None else step / float(config.steps or 1)
        if progress >= 1.0:
            break
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = config.lr * _rate_factor(progress)
        kw = {"jitter_px": config.jitter_px, "random_fraction": config.random_fraction}
        real_vivo = torch.from_numpy(vivo.sample(rng, config.batch_size, config.crop_px, **kw))
        real_clean = torch.from_numpy(clean.sample(rng, config.batch_size, config.crop_px, **kw))
        # Generators (discriminators frozen for this half-step).
        for p in discs:
            p.requires_grad_(False)
        terms, fake_clean, fake_vivo = cyclegan_losses(
            nets, real_vivo, real_clean, config.lambda_cycle, config.lambda_identity
        )
        opt_g.zero_grad(set_to_none=True)
        terms["total"].backward()  # type: ignore[no-untyped-call]
        opt_g.step()
        # Discriminators, on real crops and on pooled fakes.
        for p in discs:
            p.requires_grad_(True)
        d_terms = {}
        for name, real, fake in (
            ("clean", real_clean, fake_clean),
            ("vivo", real_vivo, fake_vivo),
        ):
            disc = nets[f"D_{name}"]
            pooled = pools[name].query(fake)
            d_terms[f"D_{name}"] = 0.5 * (
                _lsgan(disc(real), True) + _lsgan(disc(pooled.detach()), False)
            )
        opt_d.zero_grad(set_to_none=True)
        sum(d_terms.values(), torch.zeros(())).backward()  # type: ignore[no-untyped-call]
        opt_d.step()
        step += 1
        count += 1
        for key, value in {**terms, **d_terms}.items():
            sums[key] = sums.get(key, 0.0) + float(value.detach())
        now = time.monotonic()
        if now - last_log >= config.log_every_s:
            record = {k: v / count for k, v in sums.items()}
            record.update(
                step=step, elapsed_s=round(now - start, 1), lr=opt_g.param_groups[0]["lr"]
            )
            history.append(record)
            if config.progress:
                print(
                    f"step {step} ({(now - start) / 60:.1f} min) "
                    + " ".join(f"{k} {v:.4f}" for k, v in record.items() if k not in ("step",)),
                    flush=True,
                )
            sums, count, last_log = {}, 0, now
    if count:
        record = {k: v / count for k, v in sums.items()}
        record.update(step=step, elapsed_s=round(time.monotonic() - start, 1), lr=0.0)
        history.append(record)
    elapsed = time.monotonic() - start
    images_seen = step * config.batch_size
    path = _save(
        out / "cyclegan.pt",
        nets,
        config,
        history=history,
        steps=step,
        images_seen=images_seen,
        elapsed_s=elapsed,
        provenance=provenance,
    )
    (out / "history.json").write_text(json.dumps(history, indent=1) + "\n", encoding="utf-8")
    _plot_samples(nets, vivo, clean, config, out / "samples.png")
    return GanResult(path, step, images_seen, elapsed, history)


def _save(path: Path, nets: dict[str, nn.Module], config: GanConfig, **state: Any) -> Path:
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "network": config.network_config(),
        "train_config": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()
        },
        **{
            f"{k}_state": {n: t.detach().cpu() for n, t in v.state_dict().items()}
            for k, v in nets.items()
        },
        **state,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_cyclegan(path: str | Path) -> tuple[dict[str, nn.Module], dict[str, Any]]:
    """The four networks of a CycleGAN checkpoint (eval mode) and its contents.

    Raises
    ------
    LocaliserError
        Missing, unreadable or foreign file, or weights that do not fit the stored config.
    """
    path = Path(path)
    if not path.is_file():
        raise LocaliserError(f"CycleGAN checkpoint {path}: file not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise LocaliserError(
            f"CycleGAN checkpoint {path}: cannot be read (corrupt or truncated?): "
            f"{type(exc).__name__}"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise LocaliserError(f"{path}: not a patchpilot CycleGAN checkpoint")
    if data.get("format_version") != FORMAT_VERSION:
        raise LocaliserError(f"{path}: CycleGAN format version {data.get('format_version')}")
    try:
        nets = build_networks(data["network"])
        for name, net in nets.items():
            net.load_state_dict(data[f"{name}_state"])
            net.eval()
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LocaliserError(f"CycleGAN checkpoint {path}: weights do not fit: {message}") from None
    return nets, dict(data)


def _plot_samples(
    nets: dict[str, nn.Module],
    vivo: DomainFrames,
    clean: DomainFrames,
    config: GanConfig,
    path: Path,
    count: int = 6,
) -> None:
    """PNG: in vivo crops and G(in vivo) above, clean crops and F(clean) below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(config.seed + 1)
    kw = {"jitter_px": 0.0, "random_fraction": 0.0}
    real_vivo = torch.from_numpy(vivo.sample(rng, count, config.crop_px, **kw))
    real_clean = torch.from_numpy(clean.sample(rng, count, config.crop_px, **kw))
    with torch.inference_mode():
        rows = [
            real_vivo,
            nets["G"].eval()(real_vivo),
            real_clean,
            nets["F"].eval()(real_clean),
        ]
    titles = ["in vivo", "G(in vivo)", "clean", "F(clean)"]
    fig, axes = plt.subplots(4, count, figsize=(1.6 * count, 6.8), squeeze=False)
    for r, (batch, title) in enumerate(zip(rows, titles, strict=True)):
        for c in range(count):
            ax = axes[r, c]
            ax.imshow(batch[c, 0].numpy(), cmap="gray", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    if not math.isfinite(float(rows[1].abs().max())):
        raise LocaliserError("CycleGAN produced non-finite images")
