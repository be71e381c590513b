"""Running a coroutine in a KJ event loop, with the cyclic garbage
collector kept on that loop's thread.

pycapnp's objects (capability clients and servers, promises, streams)
belong to the KJ event loop of the thread that made them, and destroying
one on another thread aborts the whole process (``Fatal Python error:
Aborted``). CPython runs a collection on whichever thread's allocation
crosses the collector's threshold, and the services run blocking work
on threads: the ACME client under ``asyncio.to_thread``, pyOpenSSL's
connection threads, the OCSP HTTP server. A collection there that
freed a cycle holding a capability client killed the process (seen in
``tests/services/gateway/test_account.py``). So inside :func:`run` the
automatic collector is off, and a task on the loop collects on
CPython's own schedule instead (:func:`due`), every :data:`INTERVAL`
seconds; what is left when the coroutine ends is collected on the same
thread once the loop is gone.

Every entry into a KJ loop in the project goes through :func:`run`:
each service process, capos-init, the command-line tools and the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

import capnp

T = TypeVar("T")

#: Seconds between the loop's looks at the collector's counts.
INTERVAL = 0.5


def due(count: tuple[int, int, int],
        threshold: tuple[int, int, int]) -> int | None:
    """The generation CPython's automatic collector would collect for
    these ``gc.get_count()`` values, or ``None``: none, until more than
    ``threshold[0]`` allocations are pending; then the oldest generation
    whose count is over its threshold (without CPython's extra rule
    that defers a full collection while few long-lived objects are
    pending: here one comes at most every hundred young ones)."""
    if threshold[0] == 0 or count[0] <= threshold[0]:
        return None
    for generation in (2, 1):
        if count[generation] > threshold[generation]:
            return generation
    return 0


async def _collect(interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        generation = due(gc.get_count(), gc.get_threshold())
        if generation is not None:
            gc.collect(generation)


def run(main: Coroutine[Any, Any, T], interval: float = INTERVAL) -> T:
    """Run ``main`` to its end in a fresh asyncio and KJ event loop,
    with every garbage collection on this thread; the collector's
    automatic state is what it was before, after."""

    async def confined() -> T:
        collector = asyncio.ensure_future(_collect(interval))
        try:
            return await main
        finally:
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector

    was = gc.isenabled()
    gc.disable()
    try:
        result: T = asyncio.run(capnp.run(confined()))
        return result
    finally:
        # The cycles the loop left (an exception's traceback holding a
        # promise, say) are freed here, on this thread, once no loop is
        # left: freeing them inside the loop after their connection
        # closed crashed pycapnp (a segmentation fault, seen in the CA's
        # tests), and left for later they could be freed on any thread.
        gc.collect()
        if was:
            gc.enable()
