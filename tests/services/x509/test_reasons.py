"""Every FailureReason chain verification produces, from a built input.

Each case builds its certificates with pkifactory, runs the pure core
(:func:`services.x509.policy.verify_chain`) and asserts the reason; the
same inputs over a capability are covered by test_verifier.py. The
pyca message table is only a fallback, tested on its own at the end.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from services._runtime.schema import pki
from services.x509.errors import Reason, VerificationError
from services.x509.model import parse_certificate
from services.x509.policy import (
    WEB_PKI_LENIENT,
    VerificationPolicy,
    _pyca_reason,
    verify_chain,
)
from tests.services.x509 import pkifactory as f

P = parse_certificate
LENIENT0 = dataclasses.replace(WEB_PKI_LENIENT, clock_skew_seconds=0)


@dataclasses.dataclass
class Input:
    chain: list[bytes]
    anchors: list[bytes]
    purpose: str = "tlsServerAuth"
    host: str = f.HOST
    at: dt.datetime = f.T0
    policy: VerificationPolicy = LENIENT0
    crls: tuple[bytes, ...] = ()


def run(case: Input) -> Any:
    certs = [P(d) for d in case.chain]
    return verify_chain(certs[0], certs[1:], [P(a) for a in case.anchors],
                        case.purpose, case.at, case.host, case.policy,
                        case.crls)


def reason_of(case: Input) -> tuple[Reason, str]:
    with pytest.raises(VerificationError) as info:
        run(case)
    return info.value.reason, info.value.detail


def _h() -> f.Hierarchy:
    return f.hierarchy()


def unknown_anchor() -> Input:
    return Input(_h().chain, [f.hierarchy("B").root.der])


def expired_intermediate() -> Input:
    root = f.ca("Exp Root")
    inter = f.ca("Exp Inter", root, serial=5,
                 not_after=f.T0 - f.DAY)
    return Input([f.leaf(inter).der, inter.der], [root.der])


def not_yet_valid_leaf() -> Input:
    h = _h()
    lf = f.leaf(h.inter, not_before=f.T0 + f.DAY, serial=99)
    return Input([lf.der, h.inter.der], [h.root.der])


def signature_mismatch() -> Input:
    h = _h()
    forged = f.leaf(h.inter, signer=f.ec_key("forger"))
    return Input([forged.der, h.inter.der], [h.root.der])


def name_mismatch() -> Input:
    return Input(_h().chain, [_h().root.der], host="other.capos.test")


def weak_rsa_leaf() -> Input:
    h = _h()
    weak = f.leaf(h.inter, key=rsa.generate_private_key(65537, 1024))
    return Input([weak.der, h.inter.der], [h.root.der])


def weak_sha1_intermediate() -> Input:
    root = f.ca("SHA1 Root", key=rsa_key())
    inter = f.ca("SHA1 Inter", root, serial=6, key=rsa_key("i"))
    from tests.services.x509 import derhelp
    sha1 = derhelp.resign(inter.der, root.key, algorithm=derhelp.SHA1_RSA,
                          hash_alg=hashes.SHA1())
    return Input([f.leaf(inter).der, sha1], [root.der])


def policy_violation_serial() -> Input:
    h = _h()
    from tests.services.x509 import derhelp
    zero = derhelp.resign(f.leaf(h.inter, serial=77).der, h.inter.key,
                          derhelp.with_serial(0))
    return Input([zero, h.inter.der], [h.root.der])


def bad_eku() -> Input:
    h = _h()
    lf = f.leaf(h.inter, ekus=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    return Input([lf.der, h.inter.der], [h.root.der])


def chain_too_long() -> Input:
    root = f.ca("Deep Root")
    i1 = f.ca("Deep I1", root, serial=3)
    i2 = f.ca("Deep I2", i1, serial=4)
    return Input([f.leaf(i2).der, i2.der, i1.der], [root.der],
                 policy=dataclasses.replace(LENIENT0, max_chain_length=3))


def name_constraint_violation() -> Input:
    root = f.ca("NC Root")
    inter = f.ca("NC Inter", root, serial=7,
                 permitted=[x509.DNSName("example.net")])
    return Input([f.leaf(inter).der, inter.der], [root.der])


def revoked() -> Input:
    h = _h()
    crl = (x509.CertificateRevocationListBuilder()
           .issuer_name(h.inter.cert.subject)
           .last_update(f.T0 - f.DAY).next_update(f.T0 + 7 * f.DAY)
           .add_extension(x509.CRLNumber(1), critical=False)
           .add_revoked_certificate(
               x509.RevokedCertificateBuilder()
               .serial_number(h.leaf.cert.serial_number)
               .revocation_date(f.T0 - f.DAY).build())
           .sign(h.inter.key, hashes.SHA256()))
    from cryptography.hazmat.primitives.serialization import Encoding
    return Input(h.chain, [h.root.der],
                 crls=(crl.public_bytes(Encoding.DER),))


def rsa_key(label: str = "r") -> rsa.RSAPrivateKey:
    return _RSA.setdefault(label, rsa.generate_private_key(65537, 2048))


_RSA: dict[str, rsa.RSAPrivateKey] = {}

CASES: dict[str, tuple[Callable[[], Input], Reason]] = {
    "unknownAnchor": (unknown_anchor, Reason.unknownAnchor),
    "expired": (expired_intermediate, Reason.expired),
    "notYetValid": (not_yet_valid_leaf, Reason.notYetValid),
    "signatureMismatch": (signature_mismatch, Reason.signatureMismatch),
    "nameMismatch": (name_mismatch, Reason.nameMismatch),
    "weakAlgorithm-rsa1024": (weak_rsa_leaf, Reason.weakAlgorithm),
    "weakAlgorithm-sha1": (weak_sha1_intermediate, Reason.weakAlgorithm),
    "policyViolation": (policy_violation_serial, Reason.policyViolation),
    "badEku": (bad_eku, Reason.badEku),
    "chainTooLong": (chain_too_long, Reason.chainTooLong),
    "nameConstraintViolation": (name_constraint_violation,
                                Reason.nameConstraintViolation),
    "revoked": (revoked, Reason.revoked),
}


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_reason_is_produced(name: str) -> None:
    build, expected = CASES[name]
    reason, detail = reason_of(build())
    assert reason is expected, detail
    assert detail


def test_every_verification_reason_is_covered() -> None:
    # The chain reasons this module owns; CT, OCSP, must-staple and pins
    # are covered by test_verifier.py / test_policy.py and their issues.
    covered = {reason for _build, reason in CASES.values()}
    assert {r.name for r in covered} == {
        "unknownAnchor", "expired", "notYetValid", "signatureMismatch",
        "nameMismatch", "weakAlgorithm", "policyViolation", "badEku",
        "chainTooLong", "nameConstraintViolation", "revoked"}
    schema = set(pki().FailureReason.schema.enumerants)
    assert {r.name for r in covered} <= schema


def test_expired_names_the_certificate() -> None:
    _reason, detail = reason_of(expired_intermediate())
    assert "Exp Inter" in detail


def test_unknown_issuer_detail_says_no_path() -> None:
    reason, detail = reason_of(unknown_anchor())
    assert reason is Reason.unknownAnchor
    assert "no path to a trust anchor" in detail


def test_signature_mismatch_from_own_check_not_pyca_text() -> None:
    # pyca words a forged leaf and an unrelated issuer alike
    # ("candidates exhausted"); the diagnosis tells them apart.
    assert reason_of(signature_mismatch())[0] is Reason.signatureMismatch
    assert reason_of(unknown_anchor())[0] is Reason.unknownAnchor


def test_ip_reference_and_malformed_references() -> None:
    h = _h()
    ip_leaf = f.leaf(h.inter, sans=[x509.IPAddress(
        ipaddress.ip_address("192.0.2.7"))], serial=31)
    path = run(Input([ip_leaf.der, h.inter.der], [h.root.der],
                     host="192.0.2.7"))
    assert path.anchor.der == h.root.der
    for bad in ("foo_bar.example.com", "*.capos.test", ""):
        reason, _detail = reason_of(Input(h.chain, [h.root.der], host=bad))
        assert reason is Reason.nameMismatch, bad


def test_name_mismatch_lists_the_names_the_leaf_carries() -> None:
    h = _h()
    reason, detail = reason_of(name_mismatch())
    assert reason is Reason.nameMismatch
    assert detail == ("leaf is not valid for 'other.capos.test' (its DNS "
                      f"and IP SANs: {f.HOST!r})")
    many = f.leaf(h.inter, serial=32, sans=[
        x509.DNSName(f"n{i}.capos.test") for i in range(6)] + [
        x509.IPAddress(ipaddress.ip_address("192.0.2.7"))])
    reason, detail = reason_of(Input([many.der, h.inter.der], [h.root.der],
                                     host="192.0.2.8"))
    assert reason is Reason.nameMismatch
    assert detail == ("leaf has no iPAddress SAN 192.0.2.8 (its DNS and IP "
                      "SANs: 'n0.capos.test', 'n1.capos.test', "
                      "'n2.capos.test', 'n3.capos.test' and 3 more)")


def test_ct_log_is_not_a_chain_purpose() -> None:
    reason, _detail = reason_of(Input(_h().chain, [_h().root.der],
                                      purpose="ctLog"))
    assert reason is Reason.policyViolation


@pytest.mark.parametrize("text,reason", [
    ("candidates exhausted: excluded name constraint matched SAN",
     Reason.nameConstraintViolation),
    ("candidates exhausted: path length constraint violated",
     Reason.chainTooLong),
    ("leaf certificate has no matching subjectAltName", Reason.nameMismatch),
    ("fatal error: Exceeded maximum signature check limit",
     Reason.unknownAnchor),
    ("Forbidden public key algorithm: RSA", Reason.weakAlgorithm),
    ("something pyca has never said", Reason.policyViolation),
])
def test_pyca_text_fallback(text: str, reason: Reason) -> None:
    assert _pyca_reason(text) is reason
