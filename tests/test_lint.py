"""The tree stays within the house style's lint rules (ruff, as
``make lint`` runs it); mypy runs in ``make lint`` only, being slow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing() -> None:
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "."],
                          capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "All checks passed" in proc.stdout
