"""Command latency through each manipulator backend's whole stack.

Backends: the simulated manipulator (real clock), a Scientifica controller simulated on a pty
(real pyserial, v3 protocol, transfer time at the baud rate emulated) at 9600 and 38400 baud,
and a Sensapex uMp behind the real ``sensapex`` SDK with a simulated ``libum``.

For each: position read, move start (``move_to`` returning), stop (``stop`` returning), and the
time until a 100 µm step at 1000 µm/s reports FINISHED. Medians and 95th percentiles in ms.

    .venv/bin/python benchmarks/hardware.py [--repeats 30] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from patchpilot.clock import RealClock
from patchpilot.config import (
    PipetteConfig,
    ScientificaDriverConfig,
    SensapexDriverConfig,
    SimulatedDriverConfig,
    SoftLimits,
)
from patchpilot.events import EventLog
from patchpilot.hardware import Manipulator, MoveStatus, create_manipulator
from patchpilot.hardware.scientifica.simulator import running_simulator
from patchpilot.hardware.sensapex_sim import SimulatedLibum, SimulatedUmp, simulated_ump

LIMITS = SoftLimits(min_um=(-20000.0,) * 3, max_um=(20000.0,) * 3)


def _pipette(name: str, driver: Any) -> PipetteConfig:
    return PipetteConfig(name=name, driver=driver, pitch_deg=30.0, yaw_deg=0.0, soft_limits=LIMITS)


@contextmanager
def _simulated() -> Iterator[Manipulator]:
    yield create_manipulator(
        _pipette("sim", SimulatedDriverConfig(initial_position_um=(0.0, 0.0, 0.0))),
        log=EventLog(),
        clock=RealClock(),
        rng_seed=1,
    )


@contextmanager
def _scientifica(baudrate: int) -> Iterator[Manipulator]:
    with running_simulator(version=3, baudrate=baudrate) as controller:
        config = ScientificaDriverConfig(port=controller.port, baudrate=baudrate)
        manipulator = create_manipulator(_pipette("ps", config), log=EventLog(), clock=RealClock())
        try:
            yield manipulator
        finally:
            manipulator.close()


@contextmanager
def _sensapex() -> Iterator[Manipulator]:
    lib = SimulatedLibum([SimulatedUmp(1, position_um=(0.0, 0.0, 0.0, 0.0))])
    with simulated_ump(lib):
        yield create_manipulator(
            _pipette("ump", SensapexDriverConfig(device_id=1)), log=EventLog(), clock=RealClock()
        )


def _time_ms(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000.0


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median_ms": statistics.median(ordered), "p95_ms": p95, "n": len(ordered)}


def measure(manipulator: Manipulator, repeats: int) -> dict[str, dict[str, float]]:
    """Latencies of one open manipulator (it moves by up to ±100 µm on x)."""
    reads = [_time_ms(manipulator.position_um) for _ in range(repeats)]
    starts: list[float] = []
    stops: list[float] = []
    for index in range(repeats):
        target = (50.0 if index % 2 else -50.0, 0.0, 0.0)
        starts.append(_time_ms(lambda t=target: manipulator.move_to(t, 1000.0)))  # type: ignore[misc]
        stops.append(_time_ms(manipulator.stop))
        time.sleep(0.02)
    steps: list[float] = []
    for index in range(max(3, repeats // 10)):
        manipulator.move_to((0.0, 0.0, 0.0), 1000.0).wait(5.0)
        started = time.perf_counter()
        handle = manipulator.move_to((100.0 if index % 2 == 0 else -100.0, 0.0, 0.0), 1000.0)
        if handle.wait(10.0) is MoveStatus.FINISHED:
            steps.append((time.perf_counter() - started) * 1000.0)
    return {
        "position_read": _summary(reads),
        "move_start": _summary(starts),
        "stop": _summary(stops),
        "step_100um_done": _summary(steps) if steps else {"median_ms": float("nan"), "n": 0},
    }


BACKENDS: dict[str, Callable[[], Any]] = {
    "simulated": _simulated,
    "scientifica pty 9600": lambda: _scientifica(9600),
    "scientifica pty 38400": lambda: _scientifica(38400),
    "sensapex + sim libum": _sensapex,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    args = parser.parse_args()
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, opener in BACKENDS.items():
        with opener() as manipulator:
            results[name] = measure(manipulator, args.repeats)
    columns = ("read ms", "move start ms", "stop ms", "100 µm step ms")
    header = f"{'backend':24} " + " ".join(f"{column:>15}" for column in columns)
    print(header)
    print("-" * len(header))
    for name, rows in results.items():
        cells = [
            f"{rows[key]['median_ms']:7.2f} ({rows[key].get('p95_ms', float('nan')):6.2f})"
            for key in ("position_read", "move_start", "stop", "step_100um_done")
        ]
        print(f"{name:24} " + " ".join(f"{cell:>15}" for cell in cells))
    print("median (95th percentile)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
