"""CertificateStore: put/get/list/delete/watch over RPC, persisted on a
DiskBackend; a crash between write and rename, and a truncated or
damaged file, leave the old chain (or nothing), never a torn record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import capnp
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from services._runtime.audit import MemoryAuditSink
from services._runtime.boundary import parse_remote
from services._runtime.clock import FakeClock, epoch_seconds
from services._runtime.schema import pki
from services.certstore.disk import DiskBackend, encode
from services.certstore.store_impl import CertificateStoreImpl
from services.x509.chain_impl import CertificateChainImpl
from services.x509.model import parse_certificate
from tests.services.acme.harness import T0
from tests.services.acme.scripted import issued_chain
from tests.services.x509.rpc import run, serve


def chain_ders(name: str) -> list[bytes]:
    return [c.public_bytes(serialization.Encoding.DER)
            for c in x509.load_pem_x509_certificates(
                issued_chain(name).encode())]


def chain_of(ders: list[bytes]) -> CertificateChainImpl:
    return CertificateChainImpl([parse_certificate(d) for d in ders])


async def ders(chain: Any) -> list[bytes]:
    certs = (await chain.certificates()).chain
    return [bytes((await c.der()).encoded) for c in certs]


def store(path: Path, audit: MemoryAuditSink,
          clock: FakeClock | None = None) -> CertificateStoreImpl:
    return CertificateStoreImpl(clock or FakeClock(T0), audit,
                                wait_seconds=0.05,
                                backend=DiskBackend(path))


def ops(audit: MemoryAuditSink) -> list[tuple[str, str]]:
    return [(e.operation, e.outcome) for e in audit.events]


def test_put_get_list_delete_persist_across_reopen(tmp_path: Path) -> None:
    old, new, other = (chain_ders(n) for n in ("a.test", "b.test", "c.test"))
    audit = MemoryAuditSink()

    async def first() -> dict[str, Any]:
        async with serve(store(tmp_path, audit),
                         pki().CertificateStore) as cap:
            await cap.put(handle="gw", chain=chain_of(old))
            await cap.put(handle="gw", chain=chain_of(new))
            await cap.put(handle="other", chain=chain_of(other))
            await cap.delete(handle="other")
            try:
                await cap.get(handle="other")
                missing = ("", "")
            except capnp.KjException as err:
                missing = parse_remote(err)
            return {"list": list((await cap.list()).handles),
                    "gw": await ders((await cap.get(handle="gw")).chain),
                    "missing": missing}

    got = run(first)
    assert got == {"list": ["gw"], "gw": new,
                   "missing": ("notFound", "no chain under 'other'")}
    assert ops(audit) == [("put", "ok"), ("put", "ok"), ("rotate", "ok"),
                          ("put", "ok"), ("delete", "ok")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gw.chain"]

    reopened = MemoryAuditSink()

    async def second() -> tuple[list[str], list[bytes]]:
        async with serve(store(tmp_path, reopened),
                         pki().CertificateStore) as cap:
            return (list((await cap.list()).handles),
                    await ders((await cap.get(handle="gw")).chain))

    assert run(second) == (["gw"], new)
    assert ops(reopened) == [("load", "ok")]
    assert reopened.events[0].subject[0] == "gw"


def test_watch_gets_a_rotation_event_on_put(tmp_path: Path) -> None:
    old, new = chain_ders("a.test"), chain_ders("b.test")
    clock = FakeClock(T0)
    audit = MemoryAuditSink()

    async def go() -> list[list[tuple[str, list[bytes], int]]]:
        async with serve(store(tmp_path, audit, clock),
                         pki().CertificateStore) as cap:
            await cap.put(handle="gw", chain=chain_of(old))
            sub = (await cap.watch(handle="gw")).subscription
            batches = []
            for then in (new, None):
                events = (await sub.events()).events
                batches.append([(str(e.handle), await ders(e.newChain),
                                 int(e.rotatedAt)) for e in events])
                if then is not None:
                    clock.advance(60)
                    await cap.put(handle="gw", chain=chain_of(then))
            await sub.cancel()
            return batches

    batches = run(go)
    at = epoch_seconds(T0)
    assert batches == [[("gw", old, at)], [("gw", new, at + 60)]]
    rotate = [e for e in audit.events if e.operation == "rotate"]
    assert [e.detail for e in rotate] == ["1 subscriber(s) notified"]


def _reopen(tmp_path: Path) -> tuple[list[str], list[bytes] | None,
                                     MemoryAuditSink]:
    audit = MemoryAuditSink()

    async def go() -> tuple[list[str], list[bytes] | None]:
        async with serve(store(tmp_path, audit),
                         pki().CertificateStore) as cap:
            handles = list((await cap.list()).handles)
            chain = (await ders((await cap.get(handle="gw")).chain)
                     if "gw" in handles else None)
            return handles, chain

    handles, chain = run(go)
    return handles, chain, audit


def _seed(tmp_path: Path, chain: list[bytes]) -> DiskBackend:
    backend = DiskBackend(tmp_path)
    backend.write("gw", chain)
    return backend


def test_crash_between_write_and_rename_keeps_the_old_chain(
        tmp_path: Path) -> None:
    old, new = chain_ders("a.test"), chain_ders("b.test")
    backend = _seed(tmp_path, old)
    tmp = backend.write_temp("gw", new)  # power cut here: no rename
    assert tmp.exists()
    handles, chain, audit = _reopen(tmp_path)
    assert (handles, chain) == (["gw"], old)
    assert not tmp.exists()
    assert ("recover", "ok") in ops(audit)
    assert tmp.name in next(e.detail for e in audit.events
                            if e.operation == "recover")


def test_truncated_temp_file_is_ignored(tmp_path: Path) -> None:
    old, new = chain_ders("a.test"), chain_ders("b.test")
    _seed(tmp_path, old)
    torn = tmp_path / ".gw.chain.tmp-999-0"
    torn.write_bytes(encode(new)[:200])
    handles, chain, _ = _reopen(tmp_path)
    assert (handles, chain) == (["gw"], old)
    assert not torn.exists()


def test_a_completed_rename_serves_the_new_chain(tmp_path: Path) -> None:
    old, new = chain_ders("a.test"), chain_ders("b.test")
    backend = _seed(tmp_path, old)
    backend.commit("gw", backend.write_temp("gw", new))
    assert _reopen(tmp_path)[:2] == (["gw"], new)


def test_damaged_record_is_refused_not_served(tmp_path: Path) -> None:
    _seed(tmp_path, chain_ders("a.test"))
    path = tmp_path / "gw.chain"
    data = bytearray(path.read_bytes())
    data[40] ^= 0xFF
    path.write_bytes(bytes(data))
    handles, chain, audit = _reopen(tmp_path)
    assert (handles, chain) == ([], None)
    (event,) = [e for e in audit.events if e.operation == "load"]
    assert (event.outcome, event.reason, event.detail) == (
        "error", "policyViolation", "checksum mismatch")
