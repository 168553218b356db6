"""No abort at interpreter exit: the acquisition tests, run as separate processes, exit 0.

MMCore's C++ callback thread calling Python during interpreter shutdown used to kill the
process with rc 134 at random; the session releases the callback. Repeated to catch it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.skipif(os.environ.get("PATCHPILOT_EXIT_CHILD") == "1", reason="inside a child")
def test_acquisition_tests_exit_cleanly_in_subprocesses() -> None:
    env = {**os.environ, "PATCHPILOT_EXIT_CHILD": "1"}
    for run in range(3):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-x",
                str(HERE / "test_live.py"),
                str(HERE / "test_mda_imaging.py"),
            ],
            capture_output=True,
            text=True,
            timeout=240,
            env=env,
            cwd=HERE.parents[1],
        )
        assert result.returncode == 0, (
            f"run {run}: rc {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
