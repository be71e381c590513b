"""TrustStore attenuation over a real socketpair (two-party RPC)."""

from __future__ import annotations

from typing import Any

import pytest

from services._runtime.audit import MemoryAuditSink
from services._runtime.clock import FakeClock, epoch_seconds
from services._runtime.schema import pki
from services.x509.boundary import reason_of
from services.x509.certificate_impl import CertificateImpl
from services.x509.model import parse_certificate
from services.x509.policy import WEB_PKI_LENIENT
from services.x509.trust import Anchor, TrustStoreCore
from services.x509.truststore_impl import TrustStoreImpl
from services.x509.verifier_impl import CertVerifierImpl
from tests.services.x509 import pkifactory as f
from tests.services.x509.rpc import run, serve
from tests.services.x509.test_verifier import chain_of

AT = epoch_seconds(f.T0)


def two_root_store(audit: MemoryAuditSink) -> TrustStoreImpl:
    a, b = f.hierarchy("A"), f.hierarchy("B")
    core = TrustStoreCore((
        Anchor(parse_certificate(a.root.der), "A",
               frozenset({"tlsServerAuth"})),
        Anchor(parse_certificate(b.root.der), "B",
               frozenset({"codeSigning"})),
    ))
    return TrustStoreImpl(core, writable=True, audit=audit,
                          clock=FakeClock(f.T0))


async def anchor_ders(store: Any) -> list[bytes]:
    certs = (await store.anchors()).certs
    return [bytes((await c.der()).encoded) for c in certs]


def test_restrict_keeps_only_filtered_anchors() -> None:
    a, b = f.hierarchy("A"), f.hierarchy("B")
    audit = MemoryAuditSink()
    verifier = CertVerifierImpl(WEB_PKI_LENIENT, audit=audit,
                                clock=FakeClock(f.T0))

    async def main() -> tuple[list[bytes], str, str]:
        async with serve(two_root_store(audit), pki().TrustStore) as full, \
                serve(verifier, pki().CertVerifier) as v:
            flt = pki().TrustFilter.new_message()
            flt.fingerprints = [parse_certificate(a.root.der).sha256]
            subset = (await full.restrict(flt)).subset
            ders = await anchor_ders(subset)
            # The remote, restricted store is handed to the verifier as
            # a capability; it fetches anchors back over RPC.
            out_a = (await v.verifyChain(chain_of(*a.chain), subset,
                                         "tlsServerAuth", AT, f.HOST)
                     ).outcome
            out_b = (await v.verifyChain(chain_of(*b.chain), subset,
                                         "tlsServerAuth", AT, f.HOST)
                     ).outcome
            return ders, str(out_a.which()), str(out_b.invalid.reason)

    ders, which_a, reason_b = run(main)
    assert ders == [a.root.der]
    assert which_a == "valid"
    assert reason_b == "unknownAnchor"


def test_restrict_by_purpose() -> None:
    a = f.hierarchy("A")

    async def main() -> list[bytes]:
        audit = MemoryAuditSink()
        async with serve(two_root_store(audit), pki().TrustStore) as full:
            flt = pki().TrustFilter.new_message()
            flt.purposes = ["tlsServerAuth"]
            return await anchor_ders((await full.restrict(flt)).subset)

    assert run(main) == [a.root.der]


def test_restricted_store_refuses_add() -> None:
    c = f.hierarchy("C")

    async def main() -> tuple[str, str]:
        audit = MemoryAuditSink()
        async with serve(two_root_store(audit), pki().TrustStore) as full:
            subset = (await full.restrict(
                pki().TrustFilter.new_message())).subset
            with pytest.raises(Exception) as info:
                await subset.addAnchor(
                    CertificateImpl(parse_certificate(c.root.der)),
                    pki().AnchorPin.new_message())
            return reason_of(info.value)

    reason, detail = run(main)
    assert reason == "policyViolation"
    assert "Traceback" not in detail


def test_read_only_view_refuses_add_and_sees_changes() -> None:
    c = f.hierarchy("C")
    audit = MemoryAuditSink()
    store = two_root_store(audit)

    async def main() -> tuple[Any, list[int], int]:
        async with serve(store.read_only(), pki().TrustStore) as ro, \
                serve(store, pki().TrustStore) as rw:
            cert = CertificateImpl(parse_certificate(c.root.der))
            with pytest.raises(Exception) as info:
                await ro.addAnchor(cert, pki().AnchorPin.new_message())
            versions = [(await rw.version()).n]
            await rw.addAnchor(cert, pki().AnchorPin.new_message())
            versions.append((await rw.version()).n)
            selector = pki().AnchorSelector.new_message()
            selector.fingerprint = parse_certificate(c.root.der).sha256
            await rw.removeAnchor(selector)
            versions.append((await ro.version()).n)
            return info.value, versions, len(await anchor_ders(ro))

    exc, versions, count = run(main)
    description = str(getattr(exc, "description", exc))
    assert description.removeprefix("remote exception: ").removeprefix(
        "message = ").startswith("policyViolation:")
    assert "Traceback" not in description
    assert versions == [0, 1, 2]
    assert count == 2
    assert [(e.operation, e.outcome) for e in audit.events] == [
        ("addAnchor", "refused"), ("addAnchor", "ok"),
        ("removeAnchor", "ok")]


def test_add_anchor_with_wrong_pin_is_pin_mismatch() -> None:
    c = f.hierarchy("C")
    audit = MemoryAuditSink()

    async def main() -> tuple[str, int]:
        async with serve(two_root_store(audit), pki().TrustStore) as rw:
            pin = pki().AnchorPin.new_message()
            pin.spkiHash = b"\x00" * 32
            pin.hashAlgorithm = "sha256"
            with pytest.raises(Exception) as info:
                await rw.addAnchor(
                    CertificateImpl(parse_certificate(c.root.der)), pin)
            return reason_of(info.value)[0], (await rw.version()).n

    assert run(main) == ("pinMismatch", 0)


def test_remove_by_subject() -> None:
    a = f.hierarchy("A")
    audit = MemoryAuditSink()

    async def main() -> list[bytes]:
        async with serve(two_root_store(audit), pki().TrustStore) as rw:
            anchors = (await rw.anchors()).certs
            names = [(await c.subject()).name for c in anchors]
            selector = pki().AnchorSelector.new_message()
            selector.subject = names[0]
            await rw.removeAnchor(selector)
            return await anchor_ders(rw)

    assert run(main) == [f.hierarchy("B").root.der]
    del a
