"""Random closed-loop scenarios on a simulated rig, run faster than real time and scored on
the simulators' physical tips (``patchpilot benchmark approach``).

An experiment-level part: it wires simulated hardware, the controller and an imaging (the
fast stand-in, or the scene renderer with a real localiser) on a ``SimClock``::

    from patchpilot.scenarios import run_scenario, summarise
    results = [run_scenario(seed, "stale", imaging="standin") for seed in range(20)]
    summarise(results)["success_rate"]
"""

from __future__ import annotations

from patchpilot.scenarios.runner import ImagingKind, Mode, run_scenario, shipped_localiser
from patchpilot.scenarios.scoring import ScenarioResult, summarise

__all__ = [
    "ImagingKind",
    "Mode",
    "ScenarioResult",
    "run_scenario",
    "shipped_localiser",
    "summarise",
]
