"""The pure revocation step of the verifier policy
(:func:`services.x509.policy.decide_revocation`): CA certificates on
the path against their issuers' CRLs, store refusals as unusable CRLs,
and the leaf's decision handed to services/ocsp/evidence.py."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from services.x509.errors import Reason, VerificationError
from services.x509.model import parse_certificate
from services.x509.policy import (
    WEB_PKI_LENIENT,
    VerificationPolicy,
    VerifiedPath,
    build_path,
    decide_revocation,
    verify_chain,
)
from tests.services.x509 import pkifactory as f

HARD = dataclasses.replace(WEB_PKI_LENIENT, require_ocsp=True)


def crl(issuer: f.Issued, revoked: tuple[int, ...] = (), *,
        critical_unknown: bool = False) -> bytes:
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(issuer.cert.subject)
               .last_update(f.T0 - f.DAY).next_update(f.T0 + 7 * f.DAY)
               .add_extension(x509.CRLNumber(1), critical=False))
    if critical_unknown:
        builder = builder.add_extension(x509.UnrecognizedExtension(
            x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00"),
            critical=True)
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial)
            .revocation_date(f.T0 - f.DAY)
            .add_extension(x509.CRLReason(x509.ReasonFlags.ca_compromise),
                           critical=False).build())
    signed = builder.sign(issuer.key, hashes.SHA256())
    return signed.public_bytes(Encoding.DER)


def built(policy: VerificationPolicy = WEB_PKI_LENIENT) -> VerifiedPath:
    h = f.hierarchy()
    return build_path(parse_certificate(h.leaf.der),
                      [parse_certificate(h.inter.der)],
                      [parse_certificate(h.root.der)], "tlsServerAuth",
                      f.T0, f.HOST, policy)


def test_build_path_leaves_revocation_undecided() -> None:
    path = built()
    assert path.revocation is None
    assert [c.der for c in path.path] == [*f.hierarchy().chain,
                                          f.hierarchy().root.der]


def test_revoked_intermediate_on_the_roots_crl() -> None:
    h = f.hierarchy()
    listed = crl(h.root, (h.inter.cert.serial_number,))
    with pytest.raises(VerificationError) as info:
        decide_revocation(built(), f.T0, WEB_PKI_LENIENT, crls=(listed,))
    assert info.value.reason is Reason.revoked
    assert "caCompromise" in info.value.detail
    assert "Intermediate A" in info.value.detail


def test_unusable_ca_crl_soft_fails_or_fails_under_require_ocsp() -> None:
    h = f.hierarchy()
    bad = crl(h.root, critical_unknown=True)
    soft = decide_revocation(built(), f.T0, WEB_PKI_LENIENT, crls=(bad,))
    assert soft.revocation is not None
    assert soft.revocation.outcome == "softFail"
    assert soft.ocsp_status == "responderUnreachable"
    assert "crlUnsupportedCriticalExtension" in soft.revocation.note
    with pytest.raises(VerificationError) as info:
        decide_revocation(built(), f.T0, HARD,
                          crls=(bad, crl(h.inter)))
    assert info.value.reason is Reason.ocspUnavailable
    assert "crlUnsupportedCriticalExtension" in info.value.detail


def test_store_refusal_is_an_unusable_crl() -> None:
    h = f.hierarchy()
    refused = {h.inter.cert.subject.public_bytes():
               "crl store: policyViolation: crlNumberMissing: absent"}
    with pytest.raises(VerificationError) as info:
        decide_revocation(built(), f.T0, HARD, crl_problems=refused)
    assert info.value.reason is Reason.ocspUnavailable
    assert "crlNumberMissing" in info.value.detail
    soft = decide_revocation(built(), f.T0, WEB_PKI_LENIENT,
                             crl_problems=refused)
    assert soft.revocation is not None
    assert "crlNumberMissing" in soft.revocation.note


def test_good_leaf_crl_is_evidence_and_verify_chain_composes() -> None:
    h = f.hierarchy()
    path = verify_chain(parse_certificate(h.leaf.der),
                        [parse_certificate(h.inter.der)],
                        [parse_certificate(h.root.der)], "tlsServerAuth",
                        f.T0, f.HOST, HARD, (crl(h.inter), crl(h.root)))
    assert path.revocation is not None
    assert (path.revocation.source, path.ocsp_status) == (
        "crl", "stapledAbsent")


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError):
        decide_revocation(built(), dt.datetime(2026, 1, 15),
                          WEB_PKI_LENIENT)


def test_revoked_leaf_carries_time_reason_and_serial() -> None:
    h = f.hierarchy()
    listed = crl(h.inter, (h.leaf.cert.serial_number,))
    with pytest.raises(VerificationError) as info:
        decide_revocation(built(), f.T0, WEB_PKI_LENIENT, crls=(listed,))
    err = info.value
    assert err.reason is Reason.revoked
    assert err.context["revocation_time"] == f.T0 - f.DAY
    assert err.context["revocation_reason"] == "caCompromise"
    assert err.context["serial"] == parse_certificate(h.leaf.der).serial.hex()
    assert err.detail.startswith(
        f"revoked: crl: revoked at {(f.T0 - f.DAY).isoformat()} "
        "(caCompromise)")
