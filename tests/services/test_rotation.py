"""Renewal and rotation through the whole service graph on the host:
capos-init's real processes, pebble issuing short-lived certificates so
the renewal policy itself makes a renewal due, a steady load of real TLS
handshakes against the gateway while it rotates, and a restart on the
same state directories that serves the stored chain without an
issuance. The VM test (tests/vm/test_rotation.py) repeats it in the
image, with the data disk, power cuts and resets."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from services._runtime import loop
from services.init import system
from tests.services.gateway.load import Load, check_rotation, handshake
from tests.services.test_issuance import NAME, signed_manifest
from tools.pebble import Pebble

#: Pebble's certificates live this long: the policy renews at half of
#: it (lifetimes of ten days or less), jittered up to 5% earlier.
LIFETIME = 24


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x]


def ops(recs: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    return {(r["service"], r["capability"], r["operation"], r["outcome"])
            for r in recs}


class Graph:
    """The service graph started on the host, on given state dirs."""

    def __init__(self, peb: Pebble, tmp: Path) -> None:
        self.m = signed_manifest(peb, tmp)
        self.order = system.start_order(system.specs_from_manifest(self.m))
        self.dirs = system.state_dirs(self.order, tmp / "data",
                                      isolated=False)
        self.audit = Path(self.dirs["audit"]) / "audit.jsonl"
        self.settings = {
            "acmeDirectory": f"https://localhost:{peb.ports.acme}/dir",
            "tlsName": NAME,
        }
        self.peb = peb

    def run(self, body: Any) -> Any:
        procs = system.spawn(self.order, bind="127.0.0.1",
                             port_map={80: self.peb.ports.http01, 443: 0})
        port = next(p for p in procs
                    if p.spec.name == "gateway").ports[443]

        async def go() -> Any:
            _, keep = await system.wire(self.m, procs, self.settings,
                                        self.dirs)
            try:
                return await body(port)
            finally:
                del keep

        try:
            return loop.run(go())
        finally:
            system.stop(procs)

    async def rotations(self, count: int, timeout: float
                        ) -> list[tuple[float, str]]:
        """Wait for ``count`` gateway.rotate records; each with the
        monotonic time this test first saw it."""
        seen: list[tuple[float, str]] = []
        deadline = time.monotonic() + timeout
        while len(seen) < count and time.monotonic() < deadline:
            fps = [r["subject"][1] for r in records(self.audit)
                   if (r["service"], r["operation"]) == ("gateway",
                                                         "rotate")]
            now = time.monotonic()
            seen += [(now, fp) for fp in fps[len(seen):]]
            await asyncio.sleep(0.05)
        assert len(seen) >= count, f"{len(seen)} rotation(s) seen"
        return seen


def test_renewal_rotates_under_load_without_a_failed_handshake(
        tmp_path: Path) -> None:
    with Pebble(tmp_path / "pebble", validity=LIFETIME) as peb:
        graph = Graph(peb, tmp_path)

        async def body(port: int) -> Any:
            await graph.rotations(1, 60)
            load = Load(port, NAME).start()
            try:
                events = await graph.rotations(2, 3 * LIFETIME)
                while load.count_since(events[-1][0]) < 20:
                    await asyncio.sleep(0.05)
            finally:
                results = await asyncio.to_thread(load.stop)
            return events, results

        events, results = graph.run(body)
    counts = check_rotation(results, events)
    assert counts["failed"] == 0, [h.error for h in results if h.error][:3]
    assert counts["stale"] == 0
    assert counts["afterRotation"] >= 20
    served = {h.sha256 for h in results}
    assert events[1][1] in served
    assert events[0][1] != events[1][1]
    got = ops(records(graph.audit))
    assert ("acme", "acmeClient", "order", "ok") in got
    assert ("gateway", "renewer", "schedule", "ok") in got
    assert ("acme", "acmeClient", "renew", "ok") in got
    assert ("gateway", "renewer", "renew", "ok") in got
    assert ("certstore", "certStore", "rotate", "ok") in got


def test_restart_serves_the_stored_chain_without_an_issuance(
        pebble: Pebble, tmp_path: Path) -> None:
    graph = Graph(pebble, tmp_path)

    async def body(port: int) -> Any:
        events = await graph.rotations(1, 60)
        return events[-1][1], await asyncio.to_thread(handshake, port, NAME)

    async def at_ready(port: int) -> Any:
        # The first thing once every service has started: the gateway
        # serves the stored chain from its start, not after ready.
        hs = await asyncio.to_thread(handshake, port, NAME)
        events = await graph.rotations(1, 60)
        deadline = time.monotonic() + 60
        while ("gateway", "renewer", "schedule", "ok") not in ops(
                records(graph.audit)[before:]):
            assert time.monotonic() < deadline, "renewal never scheduled"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the store's first watch event is in
        return events[-1][1], hs

    fp1, hs1 = graph.run(body)
    before = len(records(graph.audit))
    fp2, hs2 = graph.run(at_ready)
    again = records(graph.audit)[before:]
    assert hs1.sha256 == fp1
    assert fp2 == fp1
    assert hs2.error == "" and hs2.sha256 == fp1
    # One rotation: the chain put in service at start; the store's
    # watch hands the same chain over again, which is not a rotation.
    assert [r["subject"][1] for r in again
            if (r["service"], r["operation"]) == ("gateway", "rotate")
            ] == [fp1]
    got = ops(again)
    assert ("gateway", "gateway", "reuse", "ok") in got
    assert ("certstore", "certStore", "load", "ok") in got
    assert not {o for o in got if o[0] == "acme"}
    reuse = next(r for r in again if r["operation"] == "reuse")
    assert reuse["subject"] == ["gateway", fp1]
    assert reuse["detail"] == "key loaded"
