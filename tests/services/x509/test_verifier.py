"""CertVerifier over two-party RPC: outcomes, reasons and audit events."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from services._runtime.audit import MemoryAuditSink
from services._runtime.clock import FakeClock, epoch_seconds
from services._runtime.schema import pki
from services.x509.chain_impl import CertificateChainImpl
from services.x509.model import parse_certificate
from services.x509.policy import WEB_PKI_LENIENT, VerificationPolicy
from services.x509.trust import Anchor, TrustStoreCore
from services.x509.truststore_impl import TrustStoreImpl
from services.x509.verifier_impl import CertVerifierImpl
from tests.services.x509 import pkifactory as f
from tests.services.x509.rpc import run, serve

AT = epoch_seconds(f.T0)


def store_of(*roots: f.Issued) -> TrustStoreImpl:
    core = TrustStoreCore(tuple(
        Anchor(parse_certificate(r.der), r.cert.subject.rfc4514_string())
        for r in roots))
    return TrustStoreImpl(core, writable=True)


def chain_of(*ders: bytes) -> CertificateChainImpl:
    return CertificateChainImpl([parse_certificate(d) for d in ders])


@dataclasses.dataclass
class Result:
    which: str
    reason: str
    detail: str
    audit: MemoryAuditSink


def verify(ders: list[bytes], roots: list[f.Issued], *,
           policy: VerificationPolicy = WEB_PKI_LENIENT,
           purpose: str = "tlsServerAuth", host: str = f.HOST,
           at: int = AT) -> Result:
    audit = MemoryAuditSink()
    impl = CertVerifierImpl(policy, audit=audit, clock=FakeClock(f.T0))

    async def main() -> Result:
        async with serve(impl, pki().CertVerifier) as verifier:
            reply = await verifier.verifyChain(
                chain_of(*ders), store_of(*roots), purpose, at, host)
            out = reply.outcome
            if out.which() == "valid":
                return Result("valid", "", "", audit)
            return Result("invalid", str(out.invalid.reason),
                          out.invalid.detail, audit)

    return run(main)


def test_good_chain_is_valid() -> None:
    h = f.hierarchy()
    result = verify(h.chain, [h.root])
    assert result.which == "valid"
    [event] = result.audit.events
    assert (event.operation, event.outcome, event.reason) == (
        "verifyChain", "ok", "")
    assert event.at == f.T0


def test_valid_outcome_carries_anchor_and_not_after() -> None:
    h = f.hierarchy()
    impl = CertVerifierImpl(WEB_PKI_LENIENT, audit=MemoryAuditSink(),
                            clock=FakeClock(f.T0))

    async def main() -> tuple[bytes, int]:
        async with serve(impl, pki().CertVerifier) as verifier:
            reply = await verifier.verifyChain(
                chain_of(*h.chain), store_of(h.root), "tlsServerAuth",
                AT, f.HOST)
            valid = reply.outcome.valid
            anchor_der = (await valid.anchor.der()).encoded
            return bytes(anchor_der), valid.notAfter

    anchor_der, not_after = run(main)
    assert anchor_der == h.root.der
    assert not_after == epoch_seconds(f.T0 + 90 * f.DAY)


def _chain_too_long() -> tuple[list[bytes], list[f.Issued], dict[str, Any]]:
    root = f.ca("Deep Root")
    i1 = f.ca("Deep I1", root, serial=3)
    i2 = f.ca("Deep I2", i1, serial=4)
    lf = f.leaf(i2)
    return ([lf.der, i2.der, i1.der], [root],
            {"policy": VerificationPolicy(max_chain_length=3)})


def _signature_mismatch() -> tuple[list[bytes], list[f.Issued],
                                   dict[str, Any]]:
    h = f.hierarchy()
    forged = f.leaf(h.inter, signer=f.ec_key("forger"))
    return [forged.der, h.inter.der], [h.root], {}


def _weak_key() -> tuple[list[bytes], list[f.Issued], dict[str, Any]]:
    h = f.hierarchy()
    weak = f.leaf(h.inter, key=rsa.generate_private_key(65537, 1024))
    return [weak.der, h.inter.der], [h.root], {}


def _disallowed_algorithm() -> tuple[list[bytes], list[f.Issued],
                                     dict[str, Any]]:
    h = f.hierarchy()
    policy = VerificationPolicy(allowed_algorithms=("ecdsaP384",))
    return h.chain, [h.root], {"policy": policy}


CASES: dict[str, Any] = {
    "expired": lambda: (f.hierarchy().chain, [f.hierarchy().root],
                        {"at": AT + 91 * 86400}),
    "notYetValid": lambda: (f.hierarchy().chain, [f.hierarchy().root],
                            {"at": AT - 2 * 86400}),
    "unknownAnchor": lambda: (f.hierarchy().chain, [f.hierarchy("B").root],
                              {}),
    "nameMismatch": lambda: (f.hierarchy().chain, [f.hierarchy().root],
                             {"host": "other.capos.test"}),
    "badEku": lambda: (
        [f.leaf(f.hierarchy().inter, ekus=(
            ExtendedKeyUsageOID.CLIENT_AUTH,)).der,
         f.hierarchy().inter.der], [f.hierarchy().root], {}),
    "badEku-codeSigning": lambda: (f.hierarchy().chain,
                                   [f.hierarchy().root],
                                   {"purpose": "codeSigning"}),
    "chainTooLong": _chain_too_long,
    "signatureMismatch": _signature_mismatch,
    "weakAlgorithm-rsa1024": _weak_key,
    "weakAlgorithm-policy": _disallowed_algorithm,
    "insufficientScts": lambda: (f.hierarchy().chain, [f.hierarchy().root],
                                 {"policy": VerificationPolicy(min_scts=2)}),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_failure_reason_and_one_audit_event(case: str) -> None:
    ders, roots, kwargs = CASES[case]()
    result = verify(ders, roots, **kwargs)
    expected = case.split("-")[0]
    assert (result.which, result.reason) == ("invalid", expected), (
        result.detail)
    assert result.detail
    assert "Traceback" not in result.detail
    [event] = result.audit.events
    assert (event.outcome, event.reason) == ("refused", expected)


def test_garbage_der_in_chain_is_policy_violation() -> None:
    h = f.hierarchy()
    audit = MemoryAuditSink()
    impl = CertVerifierImpl(WEB_PKI_LENIENT, audit=audit,
                            clock=FakeClock(f.T0))

    class Garbage(pki().Certificate.Server):  # type: ignore[misc]
        async def der(self, _context: Any, **kwargs: Any) -> bytes:
            return b"\x30\x03\x02\x01"

    class GarbageChain(pki().CertificateChain.Server):  # type: ignore[misc]
        async def certificates(self, _context: Any, **kwargs: Any) -> None:
            _context.results.init("chain", 1)[0] = Garbage()

    async def main() -> Any:
        async with serve(impl, pki().CertVerifier) as verifier:
            reply = await verifier.verifyChain(
                GarbageChain(), store_of(h.root), "tlsServerAuth", AT,
                f.HOST)
            return reply.outcome.invalid.reason, reply.outcome.invalid.detail

    reason, detail = run(main)
    assert reason == "policyViolation"
    assert detail.startswith("malformed certificate")
    assert [e.reason for e in audit.events] == ["policyViolation"]


def test_parse_garbage_raises_with_reason() -> None:
    from services.x509.errors import CertificateParseError, Reason
    with pytest.raises(CertificateParseError) as info:
        parse_certificate(b"not a certificate")
    assert info.value.reason is Reason.policyViolation


def test_verify_signature_and_policy() -> None:
    h = f.hierarchy()
    impl = CertVerifierImpl(WEB_PKI_LENIENT, audit=MemoryAuditSink(),
                            clock=FakeClock(f.T0))
    message = b"signed manifest"
    assert isinstance(h.leaf.key, ec.EllipticCurvePrivateKey)
    sig = h.leaf.key.sign(message, ec.ECDSA(hashes.SHA256()))
    cert = chain_of(h.leaf.der).parsed[0]
    from services.x509.certificate_impl import CertificateImpl

    async def main() -> tuple[bool, bool, Any]:
        async with serve(impl, pki().CertVerifier) as verifier:
            good = await verifier.verifySignature(
                CertificateImpl(cert), message, sig, "ecdsaP256Sha256")
            bad = await verifier.verifySignature(
                CertificateImpl(cert), message + b"!", sig,
                "ecdsaP256Sha256")
            policy = (await verifier.policy()).policy
            return good.ok, bad.ok, (policy.maxChainLength,
                                     list(policy.allowedAlgorithms))

    good, bad, (max_len, algs) = run(main)
    assert good is True and bad is False
    assert max_len == WEB_PKI_LENIENT.max_chain_length
    assert [str(a) for a in algs] == list(WEB_PKI_LENIENT.allowed_algorithms)


def test_naive_time_is_programmer_error() -> None:
    from services.x509.policy import verify_chain
    h = f.hierarchy()
    leaf = parse_certificate(h.leaf.der)
    with pytest.raises(ValueError):
        verify_chain(leaf, [], [parse_certificate(h.root.der)],
                     "tlsServerAuth", dt.datetime(2026, 1, 15), f.HOST,
                     WEB_PKI_LENIENT)


def test_audit_record_fields_valid_and_invalid() -> None:
    import hashlib

    h = f.hierarchy()
    audit = MemoryAuditSink()
    impl = CertVerifierImpl(WEB_PKI_LENIENT, audit=audit,
                            clock=FakeClock(f.T0), service="verifier",
                            name="webPkiLenient")

    async def main() -> None:
        async with serve(impl, pki().CertVerifier) as verifier:
            for host in (f.HOST, "other.capos.test"):
                await verifier.verifyChain(
                    chain_of(*h.chain), store_of(h.root), "tlsServerAuth",
                    AT + 60, host)

    run(main)
    ok, bad = audit.events
    fingerprints = tuple(f"sha256={hashlib.sha256(d).hexdigest()}"
                         for d in h.chain)
    for event in (ok, bad):
        assert event.at == f.T0
        assert (event.service, event.capability, event.operation) == (
            "verifier", "webPkiLenient", "verifyChain")
        assert event.subject == fingerprints
        assert event.detail.startswith(
            "policy=webPkiLenient purpose=tlsServerAuth hostname=")
        assert f"at={(f.T0 + dt.timedelta(seconds=60)).isoformat()}" in (
            event.detail)
    assert (ok.outcome, ok.reason) == ("ok", "")
    root_sha = parse_certificate(h.root.der).sha256.hex()
    assert ok.detail.endswith(f"anchor={root_sha}")
    assert (bad.outcome, bad.reason) == ("refused", "nameMismatch")
    assert "hostname=other.capos.test" in bad.detail


def test_valid_outcome_carries_verified_path_not_sent_list() -> None:
    h = f.hierarchy()
    decoy = f.ca("Decoy", serial=9)
    impl = CertVerifierImpl(WEB_PKI_LENIENT, audit=MemoryAuditSink(),
                            clock=FakeClock(f.T0))

    async def main() -> list[bytes]:
        async with serve(impl, pki().CertVerifier) as verifier:
            reply = await verifier.verifyChain(
                chain_of(h.leaf.der, decoy.der, h.inter.der),
                store_of(h.root), "tlsServerAuth", AT, f.HOST)
            return [bytes((await c.der()).encoded)
                    for c in reply.outcome.valid.path]

    assert run(main) == [h.leaf.der, h.inter.der, h.root.der]


def test_unparsable_trust_store_call_is_audited_as_error() -> None:
    h = f.hierarchy()
    audit = MemoryAuditSink()
    impl = CertVerifierImpl(WEB_PKI_LENIENT, audit=audit,
                            clock=FakeClock(f.T0))

    class Broken(pki().TrustStore.Server):  # type: ignore[misc]
        async def snapshot(self, _context: Any, **kwargs: Any) -> None:
            raise RuntimeError("store offline")

    async def main() -> None:
        async with serve(impl, pki().CertVerifier) as verifier:
            await verifier.verifyChain(chain_of(*h.chain), Broken(),
                                       "tlsServerAuth", AT, f.HOST)

    with pytest.raises(Exception, match="store offline"):
        run(main)
    [event] = audit.events
    assert (event.operation, event.outcome) == ("verifyChain", "error")
    assert "store offline" in event.detail


def test_store_serving_a_malformed_anchor_is_policy_violation() -> None:
    h = f.hierarchy()
    audit = MemoryAuditSink()
    impl = CertVerifierImpl(WEB_PKI_LENIENT, audit=audit,
                            clock=FakeClock(f.T0))

    class Garbage(pki().Certificate.Server):  # type: ignore[misc]
        async def der(self, _context: Any, **kwargs: Any) -> bytes:
            return b"\x30\x03\x02\x01"

    class BadStore(pki().TrustStore.Server):  # type: ignore[misc]
        async def snapshot(self, _context: Any, **kwargs: Any) -> None:
            _context.results.digest = b"\x01" * 32

        async def anchorInfo(self, _context: Any, **kwargs: Any) -> None:
            info = _context.results.init("anchors", 1)
            info[0].cert = Garbage()
            info[0].label = "garbage"

    async def main() -> tuple[str, str]:
        async with serve(impl, pki().CertVerifier) as verifier:
            out = (await verifier.verifyChain(
                chain_of(*h.chain), BadStore(), "tlsServerAuth", AT,
                f.HOST)).outcome
            return str(out.invalid.reason), out.invalid.detail

    reason, detail = run(main)
    assert reason == "policyViolation"
    assert detail.startswith("trust store anchor: malformed certificate")
    [event] = audit.events
    assert (event.outcome, event.reason) == ("refused", "policyViolation")
    assert len(event.subject) == 2
