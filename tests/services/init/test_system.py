"""capos-init's core against real processes over real socketpairs."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from services._runtime import loop
from services._runtime.audit import MemoryAuditSink
from services._runtime.clock import SystemClock
from services._runtime.host import ServiceContext
from services._runtime.schema import manifest as manifest_schema
from services._runtime.schema import pki
from services.init import system


def make_manifest(services: list[dict[str, Any]]) -> Any:
    m = manifest_schema().BootManifest.new_message()
    m.version = 1
    entries = m.init("services", len(services))
    for entry, spec in zip(entries, services, strict=True):
        entry.name = spec["name"]
        entry.module = spec["module"]
        entry.exports = spec.get("exports", [])
        grants = entry.init("grants", len(spec.get("grants", [])))
        for g, (name, provider, cap) in zip(
            grants, spec.get("grants", []), strict=True
        ):
            g.name, g.provider, g.cap = name, provider, cap
        entry.inputs = spec.get("inputs", [])
        entry.network = spec.get("network", False)
        entry.listen = spec.get("listen", [])
        entry.state = spec.get("state", False)
        entry.devices = spec.get("devices", [])
    return m.as_reader()


AUDIT = {
    "name": "audit",
    "module": "services.audit.service",
    "exports": ["auditLog"],
}


def alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == 0


class TestStartOrder:
    def test_dependency_order(self) -> None:
        m = make_manifest([
            {"name": "b", "module": "x", "grants": [("log", "a", "auditLog")]},
            {"name": "a", "module": "x", "exports": ["auditLog"]},
        ])
        order = system.start_order(system.specs_from_manifest(m))
        assert [s.name for s in order] == ["a", "b"]

    @pytest.mark.parametrize(
        ("grant", "reason", "named"),
        [
            (("log", "nowhere", "auditLog"), "unknownService", "nowhere"),
            (("log", "audit", "rootKey"), "unknownCapability", "rootKey"),
        ],
        ids=["unknown-service", "unknown-capability"],
    )
    def test_bad_grant_is_named(self, grant, reason, named) -> None:
        m = make_manifest([
            AUDIT, {"name": "trust", "module": "x", "grants": [grant]},
        ])
        with pytest.raises(system.BootError) as info:
            system.start_order(system.specs_from_manifest(m))
        assert info.value.reason == reason
        assert named in info.value.detail
        assert "trust" in info.value.detail

    def test_cycle_refused(self) -> None:
        m = make_manifest([
            {"name": "a", "module": "x", "exports": ["c"],
             "grants": [("c", "b", "c")]},
            {"name": "b", "module": "x", "exports": ["c"],
             "grants": [("c", "a", "c")]},
        ])
        with pytest.raises(system.BootError) as info:
            system.start_order(system.specs_from_manifest(m))
        assert info.value.reason == "badGraph"
        assert "cycle" in info.value.detail

    def test_unknown_input_section(self) -> None:
        m = make_manifest([{**AUDIT, "inputs": ["secrets"]}])
        spec = system.specs_from_manifest(m)[0]
        with pytest.raises(system.BootError) as info:
            system.section_inputs(m, spec, {})
        assert info.value.reason == "unknownInput"
        assert "secrets" in info.value.detail


def test_services_run_as_processes_and_audit_round_trips(tmp_path) -> None:
    m = make_manifest([{**AUDIT, "state": True}])
    order = system.start_order(system.specs_from_manifest(m))
    dirs = system.state_dirs(order, tmp_path, isolated=False)
    path = tmp_path / "services" / "audit" / "audit.jsonl"
    procs = system.spawn(order)
    try:
        assert procs[0].pid != os.getpid()
        assert alive(procs[0].pid)

        async def go() -> Any:
            exports, keep = await system.wire(m, procs, {}, dirs)
            log = exports[("audit", "auditLog")].as_interface(pki().AuditLog)
            await log.record(event={
                "atEpochMillis": 1, "service": "test", "operation": "probe",
                "outcome": "ok", "subject": ["s1"],
            })
            got = await log.since(0)
            del keep
            return [(r.service, r.operation, list(r.subject))
                    for r in got.records], got.next

        records, nxt = loop.run(go())
    finally:
        system.stop(procs)
    assert records == [("test", "probe", ["s1"])]
    assert nxt == 1
    assert '"operation": "probe"' in path.read_text()
    assert not alive(procs[0].pid)


def test_services_hear_ready_once_every_service_started() -> None:
    m = make_manifest([
        AUDIT,
        *({"name": name, "module": "tests.services.init.ready_service",
           "grants": [("audit", "audit", "auditLog")]}
          for name in ("first", "second")),
    ])
    order = system.start_order(system.specs_from_manifest(m))
    procs = system.spawn(order)
    try:
        async def go() -> Any:
            exports, keep = await system.wire(m, procs, {})
            log = exports[("audit", "auditLog")].as_interface(pki().AuditLog)
            records: list[Any] = []
            for _ in range(200):
                records = list((await log.since(0)).records)
                if len(records) == 4:
                    break
                await asyncio.sleep(0.01)
            del keep
            return [(r.service, r.operation, r.detail) for r in records]

        records = loop.run(go())
    finally:
        system.stop(procs)
    # Neither was ready as it started (the second starts after the
    # first); both heard it, after both had started.
    assert sorted(records[:2]) == [("first", "start", "ready=False"),
                                   ("second", "start", "ready=False")]
    assert sorted(records[2:]) == [("first", "ready", ""),
                                   ("second", "ready", "")]


def test_a_context_made_without_init_is_ready() -> None:
    ctx = ServiceContext(name="s", grants={}, inputs={}, settings={},
                         clock=SystemClock(), audit=MemoryAuditSink())
    assert ctx.ready.is_set()


def test_failed_service_stops_everything() -> None:
    m = make_manifest([
        AUDIT,
        {"name": "broken", "module": "tests.services.init.failing_service",
         "exports": ["x"], "grants": [("audit", "audit", "auditLog")]},
    ])
    order = system.start_order(system.specs_from_manifest(m))
    procs = system.spawn(order)
    try:
        with pytest.raises(system.BootError) as info:
            loop.run(system.wire(m, procs, {}))
    finally:
        system.stop(procs)
    assert info.value.reason == "serviceFailed"
    assert "data disk not mounted" in info.value.detail
    assert all(not alive(p.pid) for p in procs)


def test_unknown_module_refused_before_any_fork() -> None:
    m = make_manifest([{**AUDIT, "module": "services.nope"}])
    order = system.start_order(system.specs_from_manifest(m))
    with pytest.raises(system.BootError) as info:
        system.spawn(order)
    assert info.value.reason == "unknownModule"


class TestDevices:
    """Virtio-serial ports named in an entry's ``devices``."""

    def _sysfs(self, root, ports: dict[str, str]):
        for port, name in ports.items():
            (root / "sys" / port).mkdir(parents=True)
            (root / "sys" / port / "name").write_text(name + "\n")
        return root / "sys"

    def test_port_found_by_name(self, tmp_path) -> None:
        sysfs = self._sysfs(tmp_path, {"vport0p1": "org.qemu.guest_agent.0",
                                       "vport0p2": "capos.audit"})
        assert system.find_port("capos.audit", sysfs, tmp_path / "dev") == (
            tmp_path / "dev" / "vport0p2")
        assert system.find_port("capos.other", sysfs, tmp_path) is None

    def test_missing_port_is_left_out(self, capfd) -> None:
        spec = system.ServiceSpec("audit", "m", (), (), (), False, (),
                                  devices=("capos.nosuch",))
        assert system.open_devices(spec, {}) == {}
        assert "no virtio-serial port named 'capos.nosuch'" in (
            capfd.readouterr().err)

    def test_port_that_does_not_open_stops_the_boot(self, tmp_path) -> None:
        spec = system.ServiceSpec("audit", "m", (), (), (), False, (),
                                  devices=("capos.audit",))
        with pytest.raises(system.BootError) as info:
            system.open_devices(
                spec, {"capos.audit": str(tmp_path / "gone")})
        assert info.value.reason == "deviceFailed"
        assert "audit: capos.audit" in info.value.detail
        assert "No such file or directory" in info.value.detail

    def test_audit_writes_to_its_port(self, tmp_path) -> None:
        port = tmp_path / "port"
        port.touch()
        m = make_manifest([{**AUDIT, "devices": ["capos.audit"]}])
        order = system.start_order(system.specs_from_manifest(m))
        procs = system.spawn(order, device_map={"capos.audit": str(port)})
        try:
            async def go() -> None:
                exports, keep = await system.wire(m, procs, {})
                log = exports[("audit", "auditLog")].as_interface(
                    pki().AuditLog)
                await log.record(event={
                    "atEpochMillis": 1, "service": "test",
                    "operation": "probe", "outcome": "ok"})
                del keep

            loop.run(go())
        finally:
            system.stop(procs)
        (line,) = port.read_text().splitlines()
        assert '"operation": "probe"' in line
