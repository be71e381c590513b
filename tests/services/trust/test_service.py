"""The trust service seeds read-only stores from the manifest's root
bundle, with each root's trust bits and distrust-after dates; the
``webpki`` store parses its roots on its first call."""

from __future__ import annotations

from typing import Any

import capnp
import pytest

from services._runtime.audit import MemoryAuditSink
from services._runtime.clock import FakeClock, epoch_seconds
from services._runtime.host import ServiceContext
from services._runtime.schema import manifest, pki
from services.trust import service
from services.x509.policy import WEB_PKI_LENIENT
from services.x509.verifier_impl import CertVerifierImpl
from tests.services.x509 import pkifactory as f
from tests.services.x509.rpc import run, serve
from tests.services.x509.test_verifier import chain_of

SERVER_CUTOFF = f.T0 - 2 * f.DAY
EMAIL_CUTOFF = f.T0 + 10 * f.DAY


def bundle() -> bytes:
    msg = manifest().RootBundle.new_message()
    msg.source = "test"
    anchors = msg.init("anchors", 2)
    for out, tag, server, email in (
            (anchors[0], "A", True, True), (anchors[1], "B", False, True)):
        root = f.hierarchy(tag).root
        out.der = root.der
        out.label = f"Root {tag}"
        out.trustServerAuth = server
        out.trustEmail = email
    anchors[0].serverDistrustAfter = epoch_seconds(SERVER_CUTOFF)
    anchors[0].emailDistrustAfter = epoch_seconds(EMAIL_CUTOFF)
    return bytes(msg.to_bytes())


def test_root_anchors_keep_trust_bits_and_both_distrust_dates() -> None:
    anchors, skipped = service.root_anchors(bundle())
    assert skipped == []
    a, b = anchors
    assert (a.label, sorted(a.purposes)) == ("Root A", [
        "emailSmime", "tlsServerAuth"])
    assert a.distrusted_after("tlsServerAuth") == SERVER_CUTOFF
    assert a.distrusted_after("emailSmime") == EMAIL_CUTOFF
    assert (b.label, sorted(b.purposes), b.distrust_after) == (
        "Root B", ["emailSmime"], ())


def test_exported_webpki_store_is_read_only_and_enforced() -> None:
    audit = MemoryAuditSink()
    ctx = ServiceContext(name="trust", grants={},
                         inputs={"roots": bundle()}, settings={},
                         clock=FakeClock(f.T0), audit=audit)

    async def main() -> tuple[Any, ...]:
        exports = await service.build(ctx)
        verifier = CertVerifierImpl(WEB_PKI_LENIENT, audit=audit,
                                    clock=FakeClock(f.T0))
        async with serve(exports["webpki"], pki().TrustStore) as webpki, \
                serve(verifier, pki().CertVerifier) as v:
            writable = (await webpki.snapshot()).writable
            out = (await v.verifyChain(
                chain_of(*f.hierarchy("A").chain), webpki, "tlsServerAuth",
                epoch_seconds(f.T0), f.HOST)).outcome
            return writable, str(out.invalid.reason), out.invalid.detail

    writable, reason, detail = run(main)
    assert writable is False
    # Root A's server distrust date precedes the leaf's notBefore.
    assert reason == "unknownAnchor"
    assert "'Root A'" in detail and SERVER_CUTOFF.isoformat() in detail


def context(roots: bytes) -> ServiceContext:
    return ServiceContext(name="trust", grants={}, inputs={"roots": roots},
                          settings={}, clock=FakeClock(f.T0),
                          audit=MemoryAuditSink())


def test_webpki_roots_are_parsed_on_the_first_call() -> None:
    async def main() -> tuple[bool, int, bool]:
        webpki = (await service.build(context(bundle())))["webpki"]
        at_start = webpki.loaded
        async with serve(webpki, pki().TrustStore) as client:
            count = len((await client.anchors()).certs)
        return at_start, count, webpki.loaded

    assert run(main) == (False, 2, True)


def test_a_malformed_bundle_still_fails_the_start() -> None:
    async def main() -> None:
        await service.build(context(b"not a root bundle, at all"))

    with pytest.raises((capnp.KjException, ValueError)):
        run(main)
