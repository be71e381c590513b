"""TrustStore attenuation over a real socketpair (two-party RPC)."""

from __future__ import annotations

import datetime as dt
import gc
import weakref
from typing import Any

import pytest

from services._runtime.audit import MemoryAuditSink
from services._runtime.clock import FakeClock, epoch_seconds
from services._runtime.schema import pki
from services.x509.boundary import reason_of
from services.x509.certificate_impl import CertificateImpl
from services.x509.model import parse_certificate
from services.x509.policy import WEB_PKI_LENIENT
from services.x509.trust import Anchor, Filter, TrustStoreCore, distrust
from services.x509.truststore_impl import TrustStoreImpl
from services.x509.verifier_impl import CacheStats, CertVerifierImpl
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


# --- anchor metadata across the boundary -------------------------------

def _anchor(issued: f.Issued, label: str, purposes: set[str],
            **dates: dt.datetime) -> Anchor:
    return Anchor(parse_certificate(issued.der), label, frozenset(purposes),
                  distrust(dates))


def test_anchor_info_carries_label_purposes_and_distrust() -> None:
    a = f.hierarchy("A")
    cutoff = f.T0 - 30 * f.DAY
    store = TrustStoreImpl(TrustStoreCore((_anchor(
        a.root, "Root A", {"tlsServerAuth", "emailSmime"},
        tlsServerAuth=cutoff),)))

    async def main() -> tuple[Any, ...]:
        async with serve(store, pki().TrustStore) as ts:
            reply = await ts.anchorInfo()
            [info] = reply.anchors
            der = bytes((await info.cert.der()).encoded)
            snap = await ts.snapshot()
            return (der, info.label, sorted(str(p) for p in info.purposes),
                    [(str(d.purpose), d.epochSeconds)
                     for d in info.distrustAfter],
                    reply.version, bytes(reply.digest), bytes(snap.digest),
                    snap.writable)

    der, label, purposes, dates, version, digest, snap_digest, writable = (
        run(main))
    assert der == a.root.der
    assert label == "Root A"
    assert purposes == ["emailSmime", "tlsServerAuth"]
    assert dates == [("tlsServerAuth", epoch_seconds(cutoff))]
    assert version == 0
    assert digest == snap_digest == store.core.digest
    assert writable is False


def _verify_once(store: Any, ders: list[bytes], purpose: str = (
        "tlsServerAuth"), host: str = f.HOST,
        verifier: CertVerifierImpl | None = None) -> tuple[str, str, str]:
    impl = verifier or CertVerifierImpl(
        WEB_PKI_LENIENT, audit=MemoryAuditSink(), clock=FakeClock(f.T0))

    async def main() -> tuple[str, str, str]:
        async with serve(impl, pki().CertVerifier) as v, \
                serve(store, pki().TrustStore) as ts:
            out = (await v.verifyChain(chain_of(*ders), ts, purpose, AT,
                                       host)).outcome
            if out.which() == "valid":
                return "valid", "", ""
            return "invalid", str(out.invalid.reason), out.invalid.detail

    return run(main)


def test_distrust_after_rejects_leaf_issued_later() -> None:
    h = f.hierarchy("A")
    # The leaf's notBefore is T0 - 1 day.
    late = TrustStoreImpl(TrustStoreCore((_anchor(
        h.root, "Distrusted Root", {"tlsServerAuth"},
        tlsServerAuth=f.T0 - 2 * f.DAY),)))
    early = TrustStoreImpl(TrustStoreCore((_anchor(
        h.root, "Distrusted Root", {"tlsServerAuth"},
        tlsServerAuth=f.T0),)))
    which, reason, detail = _verify_once(late, h.chain)
    assert (which, reason) == ("invalid", "unknownAnchor")
    assert "'Distrusted Root'" in detail
    assert (f.T0 - 2 * f.DAY).isoformat() in detail
    assert "distrusts tlsServerAuth certificates issued after" in detail
    assert _verify_once(early, h.chain)[0] == "valid"


def test_distrust_after_is_per_purpose() -> None:
    h = f.hierarchy("A")
    store = TrustStoreImpl(TrustStoreCore((_anchor(
        h.root, "Server-distrusted", {"tlsServerAuth", "tlsClientAuth"},
        tlsServerAuth=f.T0 - 2 * f.DAY),)))
    assert _verify_once(store, h.chain)[1] == "unknownAnchor"
    assert _verify_once(store, h.chain, "tlsClientAuth")[0] == "valid"


def test_anchor_not_trusted_for_purpose_is_not_used() -> None:
    h = f.hierarchy("A")
    store = TrustStoreImpl(TrustStoreCore((_anchor(
        h.root, "Email Only", {"emailSmime"}),)))
    which, reason, detail = _verify_once(store, h.chain)
    assert (which, reason) == ("invalid", "unknownAnchor")
    assert "'Email Only'" in detail
    assert "not trusted for tlsServerAuth" in detail


# --- restrict honours every TrustFilter field --------------------------

def _four_root_core() -> tuple[TrustStoreCore, list[f.Issued]]:
    roots = [f.hierarchy(t).root for t in "ABCD"]
    purposes = [{"tlsServerAuth"}, {"codeSigning"},
                {"tlsServerAuth", "webauthnRoot"}, {"webauthnRoot"}]
    core = TrustStoreCore(
        _anchor(r, f"Root {t}", p)
        for r, t, p in zip(roots, "ABCD", purposes, strict=True))
    return core, roots


@pytest.mark.parametrize(
    ("field", "pick", "expected"),
    [
        ("purposes", lambda rs: ["webauthnRoot"], "CD"),
        ("fingerprints", lambda rs: [_sha(rs[1]), _sha(rs[3])], "BD"),
        ("subjects", lambda rs: [_subject(rs[2])], "C"),
        ("excludeFingerprints", lambda rs: [_sha(rs[0])], "BCD"),
    ],
    ids=["purposes", "fingerprints", "subjects", "excludeFingerprints"],
)
def test_restrict_each_filter_field(field: str, pick: Any,
                                    expected: str) -> None:
    core, roots = _four_root_core()

    async def main() -> tuple[list[bytes], list[str]]:
        async with serve(TrustStoreImpl(core), pki().TrustStore) as full:
            flt = pki().TrustFilter.new_message()
            setattr(flt, field, pick(roots))
            subset = (await full.restrict(flt)).subset
            labels = [i.label for i in (await subset.anchorInfo()).anchors]
            return await anchor_ders(subset), labels

    ders, labels = run(main)
    want = [roots["ABCD".index(t)].der for t in expected]
    assert sorted(ders) == sorted(want)
    assert sorted(labels) == [f"Root {t}" for t in expected]


def test_restrict_combines_fields_and_narrows_purposes() -> None:
    core, roots = _four_root_core()

    async def main() -> list[tuple[str, list[str]]]:
        async with serve(TrustStoreImpl(core), pki().TrustStore) as full:
            flt = pki().TrustFilter.new_message()
            flt.purposes = ["webauthnRoot"]
            flt.excludeFingerprints = [_sha(roots[3])]
            subset = (await full.restrict(flt)).subset
            return [(i.label, [str(p) for p in i.purposes])
                    for i in (await subset.anchorInfo()).anchors]

    # Root C was trusted for tlsServerAuth too; the restricted store
    # trusts it for webauthnRoot only.
    assert run(main) == [("Root C", ["webauthnRoot"])]


def test_restricted_core_holds_no_reference_to_filtered_anchors() -> None:
    a, b = f.hierarchy("A"), f.hierarchy("B")
    kept = parse_certificate(a.root.der)
    dropped = parse_certificate(b.root.der)
    gone = weakref.ref(dropped)
    core = TrustStoreCore((Anchor(kept, "A"), Anchor(dropped, "B")))
    subset = core.restrict(Filter(fingerprints=frozenset({kept.sha256})))
    del core, dropped
    gc.collect()
    assert gone() is None
    assert [x.cert for x in subset.anchors] == [kept]


def test_restricted_store_does_not_follow_later_changes() -> None:
    a, c = f.hierarchy("A"), f.hierarchy("C")
    audit = MemoryAuditSink()

    async def main() -> tuple[list[bytes], int]:
        async with serve(two_root_store(audit), pki().TrustStore) as rw:
            flt = pki().TrustFilter.new_message()
            flt.purposes = ["tlsServerAuth"]
            subset = (await rw.restrict(flt)).subset
            await rw.addAnchor(
                CertificateImpl(parse_certificate(c.root.der)),
                pki().AnchorPin.new_message())
            return await anchor_ders(subset), (await subset.version()).n

    ders, version = run(main)
    assert ders == [a.root.der]
    assert version == 0


# --- write authority, versions, and the verifier's cache ---------------

def test_read_only_refuses_remove_with_reason() -> None:
    audit = MemoryAuditSink()
    store = two_root_store(audit)

    async def main() -> tuple[str, str, bool, bool]:
        async with serve(store.read_only(), pki().TrustStore) as ro, \
                serve(store, pki().TrustStore) as rw:
            selector = pki().AnchorSelector.new_message()
            selector.fingerprint = store.core.anchors[0].cert.sha256
            with pytest.raises(Exception) as info:
                await ro.removeAnchor(selector)
            reason, detail = reason_of(info.value)
            return (reason, detail, (await ro.snapshot()).writable,
                    (await rw.snapshot()).writable)

    reason, detail, ro_writable, rw_writable = run(main)
    assert reason == "policyViolation"
    assert detail == ("read-only trust store: removeAnchor needs the write "
                      "capability")
    assert (ro_writable, rw_writable) == (False, True)
    assert len(store.core.anchors) == 2
    [event] = audit.events
    assert (event.operation, event.outcome, event.reason,
            event.capability) == ("removeAnchor", "refused",
                                  "policyViolation", "trustStore")


class CountingStore(TrustStoreImpl):
    """A real store that counts how often its anchors are fetched."""

    fetches = 0

    async def anchorInfo(self, _context: Any, **kwargs: Any) -> None:
        type(self).fetches += 1
        await super().anchorInfo(_context, **kwargs)


def test_cache_reuses_anchors_and_sees_every_change() -> None:
    a, c = f.hierarchy("A"), f.hierarchy("C")
    audit = MemoryAuditSink()
    CountingStore.fetches = 0
    store = CountingStore(TrustStoreCore((_anchor(
        a.root, "A", {"tlsServerAuth"}),)), writable=True)
    verifier = CertVerifierImpl(WEB_PKI_LENIENT, audit=audit,
                                clock=FakeClock(f.T0))

    async def main() -> list[tuple[str, int, int]]:
        steps = []
        async with serve(verifier, pki().CertVerifier) as v, \
                serve(store, pki().TrustStore) as rw:
            async def check(ders: list[bytes]) -> None:
                out = (await v.verifyChain(chain_of(*ders), rw,
                                           "tlsServerAuth", AT, f.HOST)
                       ).outcome
                what = (out.invalid.reason if out.which() == "invalid"
                        else "valid")
                steps.append((str(what), (await rw.version()).n,
                              CountingStore.fetches))

            await check(a.chain)
            await check(a.chain)
            await check(c.chain)
            await rw.addAnchor(
                CertificateImpl(parse_certificate(c.root.der)),
                pki().AnchorPin.new_message())
            await check(c.chain)
            await check(c.chain)
            selector = pki().AnchorSelector.new_message()
            selector.fingerprint = parse_certificate(c.root.der).sha256
            await rw.removeAnchor(selector)
            await check(c.chain)
        return steps

    # Removing C brings the content back to {A}: a new version, but the
    # digest of content already cached, so no fetch is needed to see it.
    assert run(main) == [
        ("valid", 0, 1), ("valid", 0, 1), ("unknownAnchor", 0, 1),
        ("valid", 1, 2), ("valid", 1, 2), ("unknownAnchor", 2, 2)]
    assert verifier.cache_stats == CacheStats(hits=4, fills=2)


class LyingStore(pki().TrustStore.Server):  # type: ignore[misc]
    """Claims another store's digest while serving its own anchors."""

    def __init__(self, claimed: bytes, anchors: TrustStoreCore) -> None:
        self._claimed = claimed
        self._real = TrustStoreImpl(anchors)

    async def snapshot(self, _context: Any, **kwargs: Any) -> None:
        _context.results.version = 0
        _context.results.digest = self._claimed

    async def anchorInfo(self, _context: Any, **kwargs: Any) -> None:
        await self._real.anchorInfo(_context, **kwargs)


def test_lying_digest_cannot_poison_another_store() -> None:
    a, evil = f.hierarchy("A"), f.hierarchy("Evil")
    honest = TrustStoreImpl(TrustStoreCore((_anchor(
        a.root, "A", {"tlsServerAuth"}),)))
    liar = LyingStore(honest.core.digest, TrustStoreCore((_anchor(
        evil.root, "Evil", {"tlsServerAuth"}),)))
    verifier = CertVerifierImpl(WEB_PKI_LENIENT, audit=MemoryAuditSink(),
                                clock=FakeClock(f.T0))
    # The liar's own chain verifies against the liar's anchors...
    assert _verify_once(liar, evil.chain, verifier=verifier)[0] == "valid"
    # ...but the honest store, whose digest the liar claimed, still
    # resolves to its own anchors.
    assert _verify_once(honest, evil.chain, verifier=verifier)[1] == (
        "unknownAnchor")
    assert _verify_once(honest, a.chain, verifier=verifier)[0] == "valid"


def _sha(issued: f.Issued) -> bytes:
    return parse_certificate(issued.der).sha256


def _subject(issued: f.Issued) -> bytes:
    return parse_certificate(issued.der).subject.der


def test_distrust_after_boundary_is_strictly_after() -> None:
    h = f.hierarchy("A")
    not_before = parse_certificate(h.leaf.der).not_before
    store = TrustStoreImpl(TrustStoreCore((_anchor(
        h.root, "Edge", {"tlsServerAuth"}, tlsServerAuth=not_before),)))
    assert _verify_once(store, h.chain)[0] == "valid"


def test_version_bumps_only_on_change_and_digest_follows() -> None:
    c = f.hierarchy("C")
    store = two_root_store(MemoryAuditSink())

    async def main() -> list[tuple[int, bytes]]:
        async with serve(store, pki().TrustStore) as rw:
            async def snap() -> tuple[int, bytes]:
                s = await rw.snapshot()
                return s.version, bytes(s.digest)

            seen = [await snap()]
            selector = pki().AnchorSelector.new_message()
            selector.fingerprint = b"\x00" * 32
            await rw.removeAnchor(selector)  # matches nothing
            seen.append(await snap())
            await rw.addAnchor(
                CertificateImpl(parse_certificate(c.root.der)),
                pki().AnchorPin.new_message())
            seen.append(await snap())
            return seen

    (v0, d0), (v1, d1), (v2, d2) = run(main)
    assert (v0, v1, v2) == (0, 0, 1)
    assert d0 == d1 != d2
