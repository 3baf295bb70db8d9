"""The benchmark command still runs and prints every goal (speed itself is not tested here)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOAL_ROWS = ("1a", "1b", "1c", "2a", "2b", "2d", "2e", "2f", "3a", "3b", "4", "5a", "5b", "6a", "6b", "7a", "7b", "7c", "7d", "7e", "8a", "8b", "9a")


@pytest.mark.slow
def test_can_run_the_benchmarks_at_tiny_sizes(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "benchmarks", "--quick", "--points", "2000", "--runs", "3",
               "--calls", "2000", "--skip-mlflow", "--dir", str(tmp_path)]

    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stderr
    keys = {m.group(1) for m in re.finditer(r"^. (\d[a-z]?) +. ", done.stdout, re.MULTILINE)}
    assert keys >= set(GOAL_ROWS), done.stdout
    assert "ERROR" not in done.stdout, done.stdout + done.stderr
