"""Pictures of the state machines, drawn from the tables in ``states.py``.

``mermaid_text`` uses the ``transitions`` library's own Mermaid export (no graphviz needed);
``draw_state_diagram`` renders both machines with matplotlib, with the "from every state"
transitions (stop, fail) folded into a note so the picture stays readable.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from patchpilot.control.states import (
    COORDINATOR_TRANSITIONS,
    PIPETTE_TRANSITIONS,
    CoordinatorState,
    PipetteState,
)

__all__ = ["draw_state_diagram", "mermaid_text", "write_docs"]

_PIPETTE_LAYOUT = {
    PipetteState.IDLE: (0.0, 2.0),
    PipetteState.CALIBRATING: (1.1, 3.2),
    PipetteState.READY: (2.2, 2.0),
    PipetteState.MOVING: (3.6, 3.2),
    PipetteState.CORRECTING: (5.0, 2.0),
    PipetteState.APPROACHING: (6.4, 3.2),
    PipetteState.AT_TARGET: (7.3, 2.0),
    PipetteState.PAUSED: (4.3, 0.5),
    PipetteState.MANUAL: (1.4, 0.5),
    PipetteState.FAULT: (6.8, 0.5),
    PipetteState.STOPPED: (0.0, 0.3),
}
_COORDINATOR_LAYOUT = {
    CoordinatorState.IDLE: (0.0, 1.0),
    CoordinatorState.CALIBRATING: (0.0, 2.4),
    CoordinatorState.RUNNING: (2.4, 1.0),
    CoordinatorState.PAUSED: (4.6, 1.0),
    CoordinatorState.STOPPED: (0.0, -0.4),
}
_FOLD_FROM = 4  # a trigger valid in this many states or more is written as a note


class _DiagramModel:
    """Stands in for a pipette while the diagram is generated (conditions need a target)."""

    def is_calibrated(self, _event: object = None) -> bool:
        return True


def mermaid_text(which: str = "pipette") -> str:
    """Mermaid ``stateDiagram-v2`` source of the pipette or the coordinator machine."""
    from transitions.extensions.diagrams import GraphMachine

    if which == "pipette":
        states: Any = PipetteState
        table = PIPETTE_TRANSITIONS
        initial: Any = PipetteState.IDLE
    elif which == "coordinator":
        states, table, initial = CoordinatorState, COORDINATOR_TRANSITIONS, CoordinatorState.IDLE
    else:
        raise ValueError(f"which must be 'pipette' or 'coordinator', got {which!r}")
    machine = GraphMachine(
        model=_DiagramModel(),
        states=states,
        transitions=table,
        initial=initial,
        auto_transitions=False,
        show_conditions=True,
        graph_engine="mermaid",
        title=f"patchpilot {which}",
    )
    return str(machine.get_graph().draw(None))


def _edges(
    table: list[dict[str, Any]], states: list[Any]
) -> tuple[dict[tuple[Any, Any], list[str]], list[str]]:
    edges: dict[tuple[Any, Any], list[str]] = defaultdict(list)
    folded: list[str] = []
    for row in table:
        sources = row["source"]
        sources = states if sources == "*" else sources if isinstance(sources, list) else [sources]
        trigger = str(row["trigger"])
        label = trigger + (f" [{row['conditions']}]" if "conditions" in row else "")
        if row["source"] == "*" or len(sources) >= _FOLD_FROM:
            names = "any state" if row["source"] == "*" else ", ".join(s.value for s in sources)
            folded.append(f"{label}: {names} -> {row['dest'].value}")
            continue
        for source in sources:
            if source != row["dest"] and label not in edges[(source, row["dest"])]:
                edges[(source, row["dest"])].append(label)
    return edges, sorted(set(folded))


def _draw(
    axes: Any, layout: dict[Any, tuple[float, float]], table: list[dict[str, Any]], title: str
) -> None:
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    edges, folded = _edges(table, list(layout))
    for state, (x, y) in layout.items():
        axes.add_patch(
            FancyBboxPatch(
                (x - 0.45, y - 0.18),
                0.9,
                0.36,
                boxstyle="round,pad=0.04",
                facecolor="#e8f0fe",
                edgecolor="#3b5998",
            )
        )
        axes.text(x, y, state.value, ha="center", va="center", fontsize=9, weight="bold")
    for (source, dest), labels in edges.items():
        (x0, y0), (x1, y1) = layout[source], layout[dest]
        reverse = (dest, source) in edges
        bend = 0.25 if reverse else 0.12
        axes.add_patch(
            FancyArrowPatch(
                (x0, y0),
                (x1, y1),
                connectionstyle=f"arc3,rad={bend}",
                arrowstyle="-|>",
                mutation_scale=11,
                shrinkA=18,
                shrinkB=18,
                color="#555555",
                linewidth=0.9,
            )
        )
        # arc3 bends toward mid + rad * (dy, -dx); the curve passes half way there.
        axes.text(
            (x0 + x1) / 2 + 0.5 * bend * (y1 - y0),
            (y0 + y1) / 2 - 0.5 * bend * (x1 - x0),
            "\n".join(labels),
            ha="center",
            va="center",
            fontsize=6.5,
            color="#333333",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.5},
        )
    xs = [p[0] for p in layout.values()]
    ys = [p[1] for p in layout.values()]
    axes.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
    axes.set_ylim(min(ys) - 0.5 - 0.22 * len(folded), max(ys) + 0.6)
    axes.set_title(title, fontsize=11)
    axes.text(
        min(xs) - 0.7,
        min(ys) - 0.4,
        "also:\n" + "\n".join(folded),
        fontsize=7,
        style="italic",
        va="top",
    )
    axes.axis("off")


def draw_state_diagram(path: str | Path) -> Path:
    """Draw both machines into one PNG (matplotlib; no graphviz needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(13, 10), gridspec_kw={"height_ratios": [3.2, 1.8]}
    )
    _draw(top, _PIPETTE_LAYOUT, PIPETTE_TRANSITIONS, "per pipette")
    _draw(bottom, _COORDINATOR_LAYOUT, COORDINATOR_TRANSITIONS, "coordinator")
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def write_docs(directory: str | Path) -> list[Path]:
    """Write ``state-machine.md`` (Mermaid) and ``state-machine.png`` into ``directory``."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    markdown = folder / "state-machine.md"
    markdown.write_text(
        "# patchpilot state machines\n\n"
        "Generated from `patchpilot/control/states.py` by `patchpilot control diagram`.\n"
        "Every transition is written to the event log (kind `transition`).\n\n"
        "## Per pipette\n\n```mermaid\n" + mermaid_text("pipette") + "\n```\n\n"
        "## Coordinator\n\n```mermaid\n" + mermaid_text("coordinator") + "\n```\n",
        encoding="utf-8",
    )
    return [markdown, draw_state_diagram(folder / "state-machine.png")]
