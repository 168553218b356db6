"""The rig configuration: one frozen, typed pydantic tree loaded from YAML.

Units are in the field names (``_um``, ``_deg``, ``_s``, ``_um_s``). The sample frame is the
microscope's: x along image columns, y along image rows (both µm at the current stage
position), z along the optical axis, positive up (away from the tissue), zero at the focal
plane's reference. Manipulator coordinates are each device's own axes in µm.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "AcquisitionConfig",
    "CapsuleZone",
    "ConfigError",
    "CylinderZone",
    "DriverConfig",
    "LocaliserConfig",
    "MicroscopeConfig",
    "NoGoZone",
    "PanelConfig",
    "PipetteConfig",
    "RigConfig",
    "SafetyConfig",
    "ScientificaDriverConfig",
    "SensapexDriverConfig",
    "SimulatedDriverConfig",
    "SoftLimits",
    "checked_focus_um",
    "load_config",
]

Vec3 = tuple[float, float, float]


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names file, field and problem."""


class _Frozen(BaseModel):
    # extra="forbid": a misspelt key is an error, never silently dropped.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def _finite(values: tuple[float, ...], what: str) -> tuple[float, ...]:
    for value in values:
        if not math.isfinite(value):
            raise ValueError(f"{what} must be finite, got {value}")
    return values


class SoftLimits(_Frozen):
    """Soft limits in the manipulator's own axes (µm); moves outside are refused."""

    min_um: tuple[float, ...] = Field(min_length=3, max_length=4)
    max_um: tuple[float, ...] = Field(min_length=3, max_length=4)

    @model_validator(mode="after")
    def _check_order(self) -> SoftLimits:
        if len(self.min_um) != len(self.max_um):
            raise ValueError(
                f"min_um has {len(self.min_um)} axes but max_um has {len(self.max_um)}"
            )
        for axis, (low, high) in enumerate(zip(self.min_um, self.max_um, strict=True)):
            if low >= high:
                raise ValueError(f"limits inverted on axis {axis}: min {low} >= max {high}")
        return self

    def contains(self, position_um: tuple[float, ...] | list[float]) -> bool:
        """True when every configured axis of ``position_um`` lies within the limits."""
        return all(
            low <= value <= high
            for value, low, high in zip(position_um, self.min_um, self.max_um, strict=False)
        )


class SimulatedDriverConfig(_Frozen):
    """A simulated manipulator with deliberate imperfections (the dry-run's hardware).

    The true mounting (rotation, scale, origin) is what calibration has to discover; the
    controller never reads it.
    """

    kind: Literal["simulated"] = "simulated"
    n_axes: Literal[3, 4] = 3
    initial_position_um: tuple[float, ...] = (10000.0, 10000.0, 10000.0)
    """Where the simulated device reads at power-on (device axes, µm)."""
    origin_um: Vec3 = (0.0, 0.0, 200.0)
    """Sample-frame tip position when the device reads ``initial_position_um`` (µm)."""
    rotation_deg: Vec3 = (0.0, 0.0, 0.0)
    """Mounting rotation of the device axes about sample x, y, z (degrees, applied x then y
    then z); rz is usually the pipette's yaw plus a mounting error."""
    axis_scale: Vec3 = (1.0, 1.0, 1.0)
    """Per-axis scale error (1.0 = perfect encoder)."""
    axis_skew_deg: float = Field(default=0.0, ge=-5.0, le=5.0)
    """Non-orthogonality between the manipulator's x and y axes (degrees)."""
    backlash_um: float = Field(default=0.0, ge=0.0, le=20.0)
    drift_um_per_min: Vec3 = (0.0, 0.0, 0.0)
    readout_noise_um: float = Field(default=0.0, ge=0.0, le=5.0)
    latency_ms: float = Field(default=5.0, ge=0.0, le=1000.0)
    max_acceleration_um_s2: float = Field(default=20000.0, gt=0.0)
    settle_s: float = Field(default=0.02, ge=0.0, le=2.0)

    @field_validator("axis_scale")
    @classmethod
    def _check_scale(cls, value: Vec3) -> Vec3:
        for scale in value:
            if not 0.5 <= scale <= 2.0:
                raise ValueError(f"axis_scale {scale} is outside 0.5 to 2.0")
        return value


class SensapexDriverConfig(_Frozen):
    """A Sensapex uMp manipulator reached through the ``sensapex`` SDK (UDP)."""

    kind: Literal["sensapex"] = "sensapex"
    device_id: int = Field(ge=1, le=19)
    address: str = "169.254.255.255"
    group: int = Field(default=0, ge=0, le=15)
    n_axes: Literal[3, 4] | None = None
    """Force the axis count (uMp-4 devices are sometimes detected as 3-axis)."""
    command_timeout_s: float = Field(default=2.0, gt=0.0, le=60.0)


class ScientificaDriverConfig(_Frozen):
    """A Scientifica PatchStar/MicroStar controller on a serial port."""

    kind: Literal["scientifica"] = "scientifica"
    port: str
    baudrate: Literal[9600, 38400] | None = None
    """None: detect (9600 first, then 38400)."""
    timeout_s: float = Field(default=0.5, gt=0.0, le=10.0)
    min_speed_um_s: float = Field(default=100.0, gt=0.0)
    """Below this speed the controller cannot move smoothly; moves go stepwise."""


DriverConfig = Annotated[
    SimulatedDriverConfig | SensapexDriverConfig | ScientificaDriverConfig,
    Field(discriminator="kind"),
]


class PipetteConfig(_Frozen):
    """One pipette on its manipulator."""

    name: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    driver: DriverConfig
    pitch_deg: float = Field(ge=10.0, le=60.0)
    """Angle of the pipette axis below horizontal."""
    yaw_deg: float = Field(ge=-180.0, le=360.0)
    """Direction of the tip's advance in the image plane, from +x toward +y."""
    soft_limits: SoftLimits
    home_um: tuple[float, ...] | None = None
    """Home position in manipulator axes; None = leave where it is."""
    fast_speed_um_s: float = Field(default=1000.0, gt=0.0)
    slow_speed_um_s: float = Field(default=10.0, gt=0.0)
    max_speed_um_s: float = Field(default=2000.0, gt=0.0)
    target_standoff_um: float = Field(default=5.0, ge=0.0, le=100.0)
    """Distance short of the target (along the axis) where the approach stops."""
    tip_diameter_um: float = Field(default=1.5, gt=0.0, le=10.0)
    taper_half_angle_deg: float = Field(default=5.0, gt=0.0, le=20.0)

    @model_validator(mode="after")
    def _check_speeds(self) -> PipetteConfig:
        if self.slow_speed_um_s > self.fast_speed_um_s:
            raise ValueError(
                f"slow_speed_um_s {self.slow_speed_um_s} exceeds fast_speed_um_s "
                f"{self.fast_speed_um_s}"
            )
        if self.fast_speed_um_s > self.max_speed_um_s:
            raise ValueError(
                f"fast_speed_um_s {self.fast_speed_um_s} exceeds max_speed_um_s "
                f"{self.max_speed_um_s}"
            )
        if self.home_um is not None and not self.soft_limits.contains(self.home_um):
            raise ValueError(f"home_um {self.home_um} lies outside the soft limits")
        n_axes = getattr(self.driver, "n_axes", None)
        if n_axes is not None and len(self.soft_limits.min_um) not in (3, n_axes):
            raise ValueError(
                f"soft limits have {len(self.soft_limits.min_um)} axes, driver has {n_axes}"
            )
        return self


class CylinderZone(_Frozen):
    """A vertical cylinder (e.g. a vessel marked on the image), sample frame µm."""

    kind: Literal["cylinder"] = "cylinder"
    name: str = "zone"
    center_xy_um: tuple[float, float]
    radius_um: float = Field(gt=0.0)
    z_min_um: float = -1e4
    z_max_um: float = 1e4

    @model_validator(mode="after")
    def _check_z(self) -> CylinderZone:
        if self.z_min_um >= self.z_max_um:
            raise ValueError(f"z_min_um {self.z_min_um} >= z_max_um {self.z_max_um}")
        return self


class CapsuleZone(_Frozen):
    """A capsule around a segment (a vessel running through the volume), sample frame µm."""

    kind: Literal["capsule"] = "capsule"
    name: str = "zone"
    start_um: Vec3
    end_um: Vec3
    radius_um: float = Field(gt=0.0)


NoGoZone = Annotated[CylinderZone | CapsuleZone, Field(discriminator="kind")]


class SafetyConfig(_Frozen):
    min_clearance_um: float = Field(default=20.0, ge=0.0)
    """Minimum distance between any two pipette bodies at every moment of a plan."""
    stale_frame_timeout_s: float = Field(default=1.0, gt=0.0, le=60.0)
    max_single_correction_um: float = Field(default=10.0, gt=0.0, le=200.0)
    correction_tolerance_um: float = Field(default=1.0, gt=0.0, le=50.0)
    tip_lost_after_frames: int = Field(default=10, ge=1, le=1000)
    tissue_surface_z_um: float = 0.0
    """Sample-frame height of the brain surface; below it only axial moves are allowed."""
    safe_height_um: float = Field(default=150.0, ge=0.0)
    """Height above the surface for lateral moves."""
    approach_distance_um: float = Field(default=100.0, gt=0.0)
    """The approach starts this far from the target along the pipette axis."""
    max_calibration_residual_um: float = Field(default=2.0, gt=0.0)
    max_tip_offset_jump_um: float = Field(default=30.0, gt=0.0)
    nogo_zones: tuple[NoGoZone, ...] = ()


class MicroscopeConfig(_Frozen):
    kind: Literal["simulated", "pycromanager", "pymmcore-plus"] = "simulated"
    frame_width_px: int = Field(default=256, ge=16, le=8192)
    frame_height_px: int = Field(default=256, ge=16, le=8192)
    pixel_size_um: float = Field(default=1.0, gt=0.0, le=50.0)
    objective: str = "25x/1.05 W"
    frame_rate_hz: float = Field(default=30.0, gt=0.0, le=1000.0)
    focus_device: str = "Z"
    xy_stage_device: str = "XY"
    focus_limits_um: tuple[float, float] = (-1000.0, 1000.0)
    stage_position_um: tuple[float, float] = (0.0, 0.0)
    mm_config_file: Path | None = None
    """Micro-Manager hardware configuration (``.cfg``) that pymmcore-plus loads."""
    bridge_port: int = Field(default=4827, ge=1, le=65535)
    """The pycromanager bridge port of a running Micro-Manager (Java backend)."""

    @field_validator("focus_limits_um")
    @classmethod
    def _check_focus(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] >= value[1]:
            raise ValueError(f"focus limits inverted: {value[0]} >= {value[1]}")
        return value


class LocaliserConfig(_Frozen):
    checkpoint: Path | None = None
    """None: the default model shipped with patchpilot."""
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    confidence_threshold: float | None = Field(default=None, gt=0.0, lt=1.0)
    """None: the threshold chosen on validation frames when the model was trained (best F1)."""
    num_threads: int = Field(default=2, ge=1, le=64)


class AcquisitionConfig(_Frozen):
    record_dir: Path | None = None
    """Frames are saved through pycromanager's storage here when set."""
    exposure_ms: float = Field(default=33.0, gt=0.0, le=10000.0)


class PanelConfig(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=1, le=65535)
    max_jogs_per_s: float = Field(default=10.0, gt=0.0)


class RigConfig(_Frozen):
    """Everything a rig is: microscope, pipettes, safety, localiser."""

    name: str = "rig"
    microscope: MicroscopeConfig = MicroscopeConfig()
    pipettes: tuple[PipetteConfig, ...] = Field(min_length=1, max_length=8)
    safety: SafetyConfig = SafetyConfig()
    localiser: LocaliserConfig = LocaliserConfig()
    acquisition: AcquisitionConfig = AcquisitionConfig()
    panel: PanelConfig = PanelConfig()
    simulation_seed: int | None = None
    """Seed of the simulated rig (tissue, noise); only used with simulated hardware."""

    @model_validator(mode="after")
    def _check_pipettes(self) -> RigConfig:
        names = [p.name for p in self.pipettes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate pipette name(s): {', '.join(duplicates)}")
        addresses = [_driver_address(p) for p in self.pipettes]
        clashes = sorted({a for a in addresses if a is not None and addresses.count(a) > 1})
        if clashes:
            raise ValueError(f"two pipettes share one device: {', '.join(clashes)}")
        return self

    def pipette(self, name: str) -> PipetteConfig:
        """The pipette called ``name``; KeyError names the known ones."""
        for pipette in self.pipettes:
            if pipette.name == name:
                return pipette
        raise KeyError(f"no pipette {name!r}; known: {', '.join(p.name for p in self.pipettes)}")

    @property
    def is_simulated(self) -> bool:
        return self.microscope.kind == "simulated" and all(
            p.driver.kind == "simulated" for p in self.pipettes
        )

    @classmethod
    def from_file(cls, path: str | Path) -> RigConfig:
        return load_config(path)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _driver_address(pipette: PipetteConfig) -> str | None:
    driver = pipette.driver
    if isinstance(driver, SensapexDriverConfig):
        return f"sensapex device {driver.device_id}"
    if isinstance(driver, ScientificaDriverConfig):
        return f"serial port {driver.port}"
    return None


_UNION_TAGS = frozenset({"simulated", "sensapex", "scientifica", "cylinder", "capsule"})


def _format_location(loc: tuple[int | str, ...], data: Any) -> str:
    """Turn pydantic's error location into ``pipettes[1] (P2).pitch_deg``."""
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and item < len(node):
                node = node[item]
                if isinstance(node, dict) and isinstance(node.get("name"), str):
                    label += f" ({node['name']})"
            if parts:
                parts[-1] += label
            else:
                parts.append(label)
            continue
        if item in _UNION_TAGS and not (isinstance(node, dict) and item in node):
            continue  # the tag pydantic inserts for a discriminated union
        parts.append(item)
        node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"


def _describe(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown setting (misspelt?)"
    if kind == "missing":
        return "missing required setting"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind.endswith(("_type", "_parsing")) or kind in ("literal_error", "union_tag_invalid"):
        message += f" (got {error.get('input')!r})"
    return message


def load_config(path: str | Path) -> RigConfig:
    """Load and validate a rig configuration.

    Raises
    ------
    ConfigError
        With one readable message naming the file, the field and what is wrong.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    try:
        return RigConfig.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{_format_location(tuple(error['loc']), data)}: {_describe(error)}"
            for error in exc.errors()
        ]
        raise ConfigError(f"{path}: " + "; ".join(lines)) from None


def checked_focus_um(focus_um: float, limits_um: tuple[float, float]) -> float:
    """``focus_um`` as a float if it is finite and within the focus drive's travel.

    Raises
    ------
    ValueError
        Otherwise, naming the value and the travel (nothing should move then).
    """
    low, high = limits_um
    if not (math.isfinite(focus_um) and low <= focus_um <= high):
        raise ValueError(f"focus {focus_um} µm is not a finite value within [{low:g}, {high:g}] µm")
    return float(focus_um)
