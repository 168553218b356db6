"""Frame ready -> localisation result -> subscriber called, at 30 frames/s.

The simulated camera runs through a REAL pycromanager acquisition (Python backend) with the
rig's hook and the default localiser; prints median / p99 latency, frames acquired and
skipped, and whether pycromanager's storage lost any frame. Goal: p99 <= 50 ms, nothing lost.

    .venv/bin/python benchmarks/latency.py [--seconds S] [--json PATH] [--threads N]

Same as ``patchpilot benchmark latency``.
"""

from __future__ import annotations

import sys

from patchpilot.cli import app

if __name__ == "__main__":
    app(["benchmark", "latency", *sys.argv[1:]])
