"""Time, injected.

:class:`SystemClock` is the only code in the project that reads the real
time. Everything else receives a :class:`Clock` (services) or a ``now``
argument (pure functions). Tests use :class:`FakeClock`, which moves only
when told.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Protocol


class Clock(Protocol):
    """A source of aware-UTC wall time and monotonic seconds."""

    def now(self) -> dt.datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The real clock."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that moves only when :meth:`advance` or :meth:`set` is
    called."""

    def __init__(self, start: dt.datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start
        self._mono = 0.0

    def now(self) -> dt.datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += dt.timedelta(seconds=seconds)
        self._mono += seconds

    def set(self, when: dt.datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = when


def epoch_seconds(when: dt.datetime) -> int:
    """Seconds since the Unix epoch for an aware datetime."""
    if when.tzinfo is None:
        raise ValueError("naive datetime")
    return int(when.timestamp())


def from_epoch(seconds: int) -> dt.datetime:
    """An aware UTC datetime from epoch seconds."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC)
