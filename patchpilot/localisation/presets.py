"""Localiser presets (frozen data) and the registry/factory that builds networks from them.

A preset records everything needed to build, train and use a network: backbone, input size,
the pixel size (µm) frames are rescaled to, maximum number of tips, heatmap sigma,
normalisation, loss weights and the training schedule. ``create_localiser(name)`` is the only
way to build a network; an unknown name raises :class:`LocaliserError` listing the known ones.
Other modules add presets with ``register_localiser`` and architectures with
``register_architecture``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from patchpilot.localisation._errors import LocaliserError
from patchpilot.localisation.losses import LossSpec
from patchpilot.localisation.output import LocaliserModel

__all__ = [
    "ALL_TERMS",
    "LocaliserPreset",
    "StageSpec",
    "create_localiser",
    "get_preset",
    "list_localisers",
    "preset_from_dict",
    "preset_to_dict",
    "register_architecture",
    "register_localiser",
]

ALL_TERMS = frozenset({"heatmap", "distance", "presence", "offset"})


@dataclass(frozen=True)
class StageSpec:
    """One training stage: which parts train, at what learning rate, with which loss terms.

    ``fraction`` is this stage's share of the run's epochs (or of its minutes).
    """

    name: str
    parts: tuple[str, ...]
    lr: float
    fraction: float
    terms: frozenset[str] = ALL_TERMS
    schedule: Literal["plateau", "cosine"] = "plateau"
    """``plateau``: halve the rate after ``plateau_patience`` epochs without validation
    improvement (the paper). ``cosine``: warm up over the first 3 %, then cosine decay to
    1 % over the stage's epochs or minutes (suits a fixed time budget)."""


@dataclass(frozen=True)
class LocaliserPreset:
    """Everything that defines one localiser configuration (see the module docstring)."""

    name: str
    architecture: str
    backbone: str
    input_size_px: int
    pixel_size_um: float
    max_tips: int
    sigma_px: float
    loss: LossSpec
    stages: tuple[StageSpec, ...]
    decoder: str = ""
    backbone_kwargs: tuple[tuple[str, Any], ...] = ()
    normalisation: Literal["zscore"] = "zscore"
    train_crop_px: int | None = None
    """Side of the random training crops (fully convolutional models); None = input size."""
    batch_size: int = 16
    epochs: int = 20
    train_frames: int = 20000
    val_frames: int = 500
    plateau_patience: int = 5
    """Epochs without validation improvement before the learning rate halves."""
    weight_decay: float = 0.0
    presence_threshold: float = 0.5
    fully_convolutional: bool = False
    """True: the network takes any size that is a multiple of 32, so frames up to
    ``tile_px`` run whole instead of being cut into ``input_size_px`` tiles."""
    tile_px: int | None = None
    """Tile side at inference (None: ``input_size_px``)."""
    description: str = ""
    extra: tuple[tuple[str, Any], ...] = field(default=())
    """Free-form settings for architectures added later (kept in checkpoints)."""

    def loss_spec(self) -> LossSpec:
        """The loss weights with this preset's heatmap sigma."""
        return dataclasses.replace(self.loss, sigma_px=self.sigma_px)

    @property
    def crop_px(self) -> int:
        return self.train_crop_px or self.input_size_px


Builder = Callable[[LocaliserPreset], LocaliserModel]
_ARCHITECTURES: dict[str, Builder] = {}
_PRESETS: dict[str, LocaliserPreset] = {}


def register_architecture(name: str, builder: Builder) -> None:
    """Make ``builder(preset)`` the constructor of presets whose architecture is ``name``."""
    _ARCHITECTURES[name] = builder


def register_localiser(preset: LocaliserPreset, *, replace: bool = False) -> LocaliserPreset:
    """Add a preset to the registry and return it.

    Raises
    ------
    LocaliserError
        If the name is taken (unless ``replace``) or the architecture is unknown.
    """
    if preset.name in _PRESETS and not replace:
        raise LocaliserError(f"localiser preset {preset.name!r} is already registered")
    if preset.architecture not in _ARCHITECTURES:
        raise LocaliserError(
            f"preset {preset.name!r}: unknown architecture {preset.architecture!r}; "
            f"known: {', '.join(sorted(_ARCHITECTURES))}"
        )
    _PRESETS[preset.name] = preset
    return preset


def list_localisers(pattern: str = "*") -> list[str]:
    """Names of the registered presets matching a shell-style ``pattern``, sorted."""
    return sorted(n for n in _PRESETS if fnmatch.fnmatch(n, pattern))


def get_preset(name: str) -> LocaliserPreset:
    """The registered preset ``name``.

    Raises
    ------
    LocaliserError
        If no preset has that name (the message lists the known ones).
    """
    try:
        return _PRESETS[name]
    except KeyError:
        raise LocaliserError(
            f"unknown localiser preset {name!r}; known: {', '.join(list_localisers())}"
        ) from None


def create_localiser(preset: str | LocaliserPreset, **overrides: Any) -> LocaliserModel:
    """Build the (untrained, ``pretrained=False``) network of a preset.

    Parameters
    ----------
    preset
        A registered name or a preset object.
    **overrides
        Preset fields to change, e.g. ``input_size_px=64`` for a quick shape check.

    Raises
    ------
    LocaliserError
        Unknown preset, unknown field in ``overrides`` or unknown architecture.
    """
    spec = get_preset(preset) if isinstance(preset, str) else preset
    if overrides:
        known = {f.name for f in dataclasses.fields(LocaliserPreset)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise LocaliserError(f"unknown preset field(s): {', '.join(unknown)}")
        spec = dataclasses.replace(spec, **overrides)
    builder = _ARCHITECTURES.get(spec.architecture)
    if builder is None:
        raise LocaliserError(f"unknown architecture {spec.architecture!r}")
    return builder(spec)


def preset_to_dict(preset: LocaliserPreset) -> dict[str, Any]:
    """A JSON-safe dict of the preset (for checkpoints and weight cards)."""
    data = dataclasses.asdict(preset)
    data["stages"] = [{**s, "terms": sorted(s["terms"])} for s in data["stages"]]
    data["backbone_kwargs"] = [list(kv) for kv in preset.backbone_kwargs]
    data["extra"] = [list(kv) for kv in preset.extra]
    return data


def preset_from_dict(data: dict[str, Any]) -> LocaliserPreset:
    """Inverse of :func:`preset_to_dict`.

    Raises
    ------
    LocaliserError
        If a field is missing, unknown or of the wrong kind.
    """
    try:
        fields = dict(data)
        fields["loss"] = LossSpec(**fields["loss"])
        fields["stages"] = tuple(
            StageSpec(
                name=s["name"],
                parts=tuple(s["parts"]),
                lr=float(s["lr"]),
                fraction=float(s["fraction"]),
                terms=frozenset(s["terms"]),
                schedule=s.get("schedule", "plateau"),
            )
            for s in fields["stages"]
        )
        fields["backbone_kwargs"] = tuple((str(k), v) for k, v in fields["backbone_kwargs"])
        fields["extra"] = tuple((str(k), v) for k, v in fields.get("extra", ()))
        return LocaliserPreset(**fields)
    except (KeyError, TypeError, ValueError) as exc:
        raise LocaliserError(f"invalid preset description: {exc}") from None
