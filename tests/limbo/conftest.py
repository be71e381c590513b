"""Print the limbo summary line once, as the last line of the run."""

from __future__ import annotations

import sys
from typing import Any

#: Filled by test_limbo.py; printed when pytest is done reporting.
SUMMARY: list[str] = []


def pytest_unconfigure(config: Any) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    for line in SUMMARY:
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line, file=sys.stdout)
