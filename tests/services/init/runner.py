"""Run capos-init (``python -m services.init``) as a real process on the
host until it says it is ready or why it stopped, then stop it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def until_ready(*args: str, env: dict[str, str] | None = None
                ) -> list[str]:
    """capos-init's console lines up to ``CAPOS-READY`` or
    ``CAPOS-FATAL``; the process is terminated (and reaped) after."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.init", *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env={**os.environ, "PYTHONPATH": str(REPO),
                        "CAPOS_BIND": "127.0.0.1", **(env or {})},
    )
    lines = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.startswith(("CAPOS-READY", "CAPOS-FATAL")):
                break
        proc.terminate()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    return lines
