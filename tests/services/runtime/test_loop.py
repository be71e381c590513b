"""The KJ loop runner (:mod:`services._runtime.loop`): inside it every
garbage collection runs on the loop's thread, on CPython's schedule,
and a cycle holding a capability client that a worker thread's
allocations would once have freed (aborting the process) is freed by
the loop."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import threading
import weakref
from pathlib import Path
from typing import Any

import pytest

from services._runtime import loop

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(("count", "threshold", "want"), [
    ((0, 0, 0), (700, 10, 10), None),
    ((700, 9, 9), (700, 10, 10), None),    # at, not over, the threshold
    ((701, 0, 0), (700, 10, 10), 0),
    ((701, 11, 0), (700, 10, 10), 1),
    ((701, 11, 11), (700, 10, 10), 2),
    ((701, 0, 11), (700, 10, 10), 2),
    ((5000, 50, 50), (0, 10, 10), None),   # threshold 0: collection off
])
def test_due_follows_cpython_s_generational_rule(
        count: tuple[int, int, int], threshold: tuple[int, int, int],
        want: int | None) -> None:
    assert loop.due(count, threshold) == want


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_collections_inside_run_happen_on_the_loop_thread() -> None:
    threads: list[int] = []

    def note(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            threads.append(threading.get_ident())

    def churn() -> tuple[weakref.ref[_Cycle], list[list[int]]]:
        # A cycle, then more live allocations than the young
        # generation's threshold, in a worker thread, as the ACME
        # client's requests make: automatic collection would run here.
        ref = weakref.ref(_Cycle())
        return ref, [[i] for i in range(5 * gc.get_threshold()[0])]

    async def main() -> tuple[bool, int, weakref.ref[_Cycle], bool]:
        enabled = gc.isenabled()
        ref, _kept = await asyncio.to_thread(churn)  # kept alive
        for _ in range(100):  # the loop's collector frees the cycle
            if ref() is None:
                break
            await asyncio.sleep(0.01)
        return enabled, threading.get_ident(), ref, ref() is None

    gc.callbacks.append(note)
    try:
        assert gc.isenabled()
        enabled, loop_thread, ref, freed = loop.run(main(), interval=0.01)
    finally:
        gc.callbacks.remove(note)
    assert enabled is False          # automatic collection off inside
    assert gc.isenabled()            # and back on after
    assert freed and ref() is None   # the loop collected the cycle
    assert threads and set(threads) == {loop_thread}


#: A capability client (over two-party RPC) in a cycle, dropped, while a
#: worker thread allocates past the young generation's threshold: a
#: collection on the worker destroys the client there, and KJ aborts
#: the process ("No event loop is running on this thread").
_SCRIPT = """
import asyncio, socket, sys
import capnp
from services._runtime import loop
from services._runtime.schema import pki
from services.x509.trust import TrustStoreCore
from services.x509.truststore_impl import TrustStoreImpl

class Holder:
    def __init__(self, cap):
        self.me = self
        self.cap = cap

def churn():
    for _ in range(20):
        junk = [[i] for i in range(5_000)]
        del junk

async def main():
    a, b = socket.socketpair()
    ours = await capnp.AsyncIoStream.create_connection(sock=a)
    theirs = await capnp.AsyncIoStream.create_connection(sock=b)
    server = capnp.TwoPartyServer(
        ours, bootstrap=TrustStoreImpl(TrustStoreCore([])))
    client = capnp.TwoPartyClient(theirs)
    for _ in range(50):
        cap = client.bootstrap().cast_as(pki().TrustStore)
        await cap.version()
        Holder(cap)
        del cap
        await asyncio.to_thread(churn)
    return "ok"

if sys.argv[1] == "unconfined":
    print(asyncio.run(capnp.run(main())))
else:
    print(loop.run(main(), interval=0.05))
"""


def _script(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT, mode], cwd=REPO,
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)})


def test_a_dropped_cycle_holding_a_client_does_not_abort_the_process(
        ) -> None:
    proc = _script("confined")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["ok"]


def test_without_the_runner_the_same_program_aborts() -> None:
    """The control: what :func:`loop.run` prevents is real with this
    pycapnp (if this starts passing through, the hazard is gone)."""
    proc = _script("unconfined")
    assert proc.returncode != 0
    assert "No event loop is running on this thread" in proc.stderr
