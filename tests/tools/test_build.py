"""``make manifest``: the manifest ``make run`` boots, signed and valid."""

from __future__ import annotations

import re
import subprocess
import sys

from tools.run import REPO


def test_manifest_only_builds_a_manifest_that_verifies() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tools.build", "--manifest-only"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    m = re.search(r"manifest (\S+) version (\d+) .*\(172 anchors, 56 CT "
                  r"logs\); public key (\S+)", proc.stdout)
    assert m, proc.stdout
    verify = subprocess.run(
        [sys.executable, "-m", "bootmanifest", "verify", m.group(1),
         "--pubkey", m.group(3)], capture_output=True, text=True,
        cwd=REPO, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert m.group(2) in verify.stdout
