"""Clearance warnings: which pipette bodies are near (or within) the minimum clearance.

Distances are the exact body distances of ``control.bodies`` (cones along each pipette). One
computation over every pair takes tens of milliseconds, so results are kept until a tip moves
by more than ``move_um`` or ``period_s`` has passed.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from patchpilot.config import PipetteConfig
from patchpilot.control.bodies import batch_distance_um, pipette_body
from patchpilot.control.geometry import PipetteGeometry
from patchpilot.panel._protocol import ClearanceWarning, Point

__all__ = ["ClearanceMonitor"]

_Tips = tuple[tuple[str, Point], ...]


class ClearanceMonitor:
    """Cached clearance warnings for a set of pipettes.

    Parameters
    ----------
    pipettes
        Their geometry (axis, tip size, taper) comes from the configuration.
    min_clearance_um
        Below this a pair is a violation.
    warn_factor
        Pairs closer than ``warn_factor * min_clearance_um`` are warned about.
    period_s, move_um
        Recompute at most this often, or when a tip moved by more than this (µm).
    clock
        Monotonic seconds.
    """

    def __init__(
        self,
        pipettes: Sequence[PipetteConfig],
        min_clearance_um: float,
        *,
        warn_factor: float = 2.0,
        period_s: float = 0.5,
        move_um: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._geometries = {p.name: PipetteGeometry.from_config(p) for p in pipettes}
        self.min_clearance_um = min_clearance_um
        self.near_um = max(min_clearance_um * warn_factor, 1.0)
        self._period_s = period_s
        self._move_um = move_um
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: tuple[float, _Tips, tuple[ClearanceWarning, ...]] | None = None

    def warnings(self, tips_um: Mapping[str, Point | None]) -> tuple[ClearanceWarning, ...]:
        """Warnings for the pipettes whose tips are known (sample frame, µm)."""
        known: _Tips = tuple((n, t) for n, t in tips_um.items() if t is not None)
        now = self._clock()
        with self._lock:
            cached = self._cache
        if cached is not None:
            when, cached_tips, warnings = cached
            same = len(cached_tips) == len(known) and all(
                a == b and math.dist(ta, tb) <= self._move_um
                for (a, ta), (b, tb) in zip(cached_tips, known, strict=True)
            )
            if same or now - when < self._period_s:
                return warnings
        warnings = self._compute(known)
        with self._lock:
            self._cache = (now, known, warnings)
        return warnings

    def _compute(self, known: _Tips) -> tuple[ClearanceWarning, ...]:
        pairs = [(a, b) for i, a in enumerate(known) for b in known[i + 1 :]]
        if not pairs:
            return ()
        bodies = [
            (pipette_body(self._geometries[a], tip_a), pipette_body(self._geometries[b], tip_b))
            for (a, tip_a), (b, tip_b) in pairs
        ]
        gaps = batch_distance_um(bodies)
        return tuple(
            ClearanceWarning(a, b, float(gap), bool(gap < self.min_clearance_um))
            for ((a, _), (b, _)), gap in zip(pairs, gaps, strict=True)
            if gap < self.near_um
        )
