"""Print the limbo summary line in pytest's terminal summary.

It comes just before pytest's own closing line, which stays last so
that whoever reads the run's end reads pytest's counts.
"""

from __future__ import annotations

from typing import Any

#: Filled by test_limbo.py; printed when pytest reports its summary.
SUMMARY: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in SUMMARY:
        terminalreporter.write_line(line)
