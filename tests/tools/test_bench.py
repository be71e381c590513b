"""``make bench`` output keeps its documented form (values not judged)."""

from __future__ import annotations

import re
import subprocess
import sys

from tools.bench import REPO

LINE = re.compile(
    r"^bench: [a-z0-9_]+ = -?[0-9.]+ \S+"
    r"( \([^()]+ -?[0-9.]+ \S+, ratio [0-9.]+\))?$")


def test_area_figures_are_one_per_line_in_the_documented_form() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tools.bench", "--only", "trust"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines, "no figures printed"
    for text in lines:
        assert LINE.match(text), text
    assert any("ratio" in text for text in lines)


def test_unknown_area_is_a_usage_error_naming_the_known_ones() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tools.bench", "--only", "nosuch"],
        capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 2
    assert "unknown area 'nosuch'" in proc.stderr
    assert "boot" in proc.stderr
