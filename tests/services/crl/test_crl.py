"""Field report 13 (a)-(e) and the rest of the CRL checks: signature,
freshness, SHA-1 setting (6c), scope, and CrlStore over two-party RPC
with the private CA's CRL served from its CDP on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from services._runtime.audit import MemoryAuditSink
from services._runtime.boundary import parse_remote
from services._runtime.clock import FakeClock
from services._runtime.schema import pki
from services.ca import issuer as ca_issuer
from services.ca.core import PrivateCA
from services.crl.errors import CrlError, Problem, Reason
from services.crl.policy import check_crl, lookup
from services.crl.store_impl import CrlCache, CrlStoreImpl
from services.crl.transport import CallableCrlSource, HttpCrlSource
from services.ocsp.server import OcspHttpServer
from services.x509.certificate_impl import write_name
from services.x509.model import parse_name
from tests.services.ca import helpers as h
from tests.services.ocsp.pkiworld import resign_sha1
from tests.services.x509.rpc import run, serve

T0 = h.T0
UNKNOWN = x509.ObjectIdentifier("1.3.6.1.4.1.55555.1")
NULL = x509.UnrecognizedExtension(UNKNOWN, b"\x05\x00")


def make_ca(path: Path, key_type: str = "ecdsaP256",
            name: str = "capOS Private CA") -> PrivateCA:
    return h.open_ca(path, FakeClock(T0), key_type=key_type, name=name)


def crl(ca: PrivateCA, *, revoked: tuple[int, ...] = (),
        extensions: tuple[tuple[x509.ExtensionType, bool], ...] = (),
        entry_extensions: tuple[tuple[x509.ExtensionType, bool], ...] = (),
        this_update: dt.datetime = T0 - dt.timedelta(hours=1),
        next_update: dt.datetime = T0 + dt.timedelta(days=7)) -> bytes:
    """Field report 13's CRL: v2, SHA-256, CRLNumber and AKI."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(this_update).next_update(next_update)
        .add_extension(x509.CRLNumber(7), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca.cert.public_key()), critical=False))  # type: ignore
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    for serial in revoked:
        entry = (x509.RevokedCertificateBuilder().serial_number(serial)
                 .revocation_date(T0 - dt.timedelta(hours=2))
                 .add_extension(x509.CRLReason(
                     x509.ReasonFlags.key_compromise), critical=False))
        for ext, critical in entry_extensions:
            entry = entry.add_extension(ext, critical=critical)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(ca._key, hashes.SHA256()).public_bytes(Encoding.DER)


@pytest.fixture
def ca(tmp_path: Path) -> PrivateCA:
    return make_ca(tmp_path / "ca")


def status(ca: PrivateCA, der: bytes, leaf: x509.Certificate) -> str:
    """good / revoked / Unknown:<problem>, as field report 13 words it."""
    try:
        entry = lookup(check_crl(der, ca.cert, T0), leaf)
    except CrlError as err:
        return f"Unknown:{err.problem.value}"
    return "revoked" if entry else "good"


def test_a_unknown_critical_extension_makes_the_crl_unusable(
        ca: PrivateCA) -> None:
    leaf = h.issue_direct(ca, ["www.example.com"])
    der = crl(ca, extensions=((NULL, True),))
    assert status(ca, der, leaf) == "Unknown:crlUnsupportedCriticalExtension"
    with pytest.raises(CrlError) as err:
        check_crl(der, ca.cert, T0)
    assert err.value.reason is Reason.policyViolation
    assert err.value.context["oid"] == UNKNOWN.dotted_string


def test_b_same_extension_non_critical_is_used(ca: PrivateCA) -> None:
    leaf = h.issue_direct(ca, ["www.example.com"])
    assert status(ca, crl(ca, extensions=((NULL, False),)), leaf) == "good"
    assert status(ca, crl(ca, extensions=((NULL, False),),
                          revoked=(leaf.serial_number,)), leaf) == "revoked"


def test_c_known_critical_idp_is_accepted(ca: PrivateCA) -> None:
    leaf = h.issue_direct(ca, ["www.example.com"])
    idp = x509.IssuingDistributionPoint(
        full_name=[x509.UniformResourceIdentifier(h.CRL_URL)],
        relative_name=None, only_contains_user_certs=True,
        only_contains_ca_certs=False, only_some_reasons=None,
        indirect_crl=False, only_contains_attribute_certs=False)
    assert status(ca, crl(ca, extensions=((idp, True),)), leaf) == "good"
    # The IDP is honoured, not only tolerated: a CRL for another
    # distribution point does not speak for this leaf.
    other = x509.IssuingDistributionPoint(
        full_name=[x509.UniformResourceIdentifier("http://127.0.0.1:9/b")],
        relative_name=None, only_contains_user_certs=True,
        only_contains_ca_certs=False, only_some_reasons=None,
        indirect_crl=False, only_contains_attribute_certs=False)
    assert status(ca, crl(ca, extensions=((other, True),)), leaf) == (
        "Unknown:crlScopeMismatch")


def test_d_unknown_critical_entry_extension_poisons_the_crl(
        ca: PrivateCA) -> None:
    leaf = h.issue_direct(ca, ["www.example.com"])
    der = crl(ca, revoked=(0x4242,), entry_extensions=((NULL, True),))
    assert status(ca, der, leaf) == "Unknown:crlUnsupportedCriticalExtension"
    ok = crl(ca, revoked=(0x4242,), entry_extensions=((NULL, False),))
    assert status(ca, ok, leaf) == "good"


def test_e_issuer_without_crl_sign_is_not_authorised(ca: PrivateCA) -> None:
    leaf = h.issue_direct(ca, ["www.example.com"])
    # Same name and key, but keyUsage keyCertSign only.
    no_crl_sign = (
        x509.CertificateBuilder().subject_name(ca.cert.subject)
        .issuer_name(ca.cert.subject).public_key(ca.cert.public_key())
        .serial_number(99).not_valid_before(T0 - dt.timedelta(days=1))
        .not_valid_after(T0 + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                       critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False,
            key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(
            ca.cert.public_key()), critical=False)
        .sign(ca._key, hashes.SHA256()))
    with pytest.raises(CrlError) as err:
        check_crl(crl(ca), no_crl_sign, T0)
    assert err.value.problem is Problem.crlIssuerNotAuthorized
    assert status(ca, crl(ca), leaf) == "good"


@pytest.mark.parametrize(("kwargs", "problem"), [
    (dict(next_update=T0 - dt.timedelta(minutes=10)), Problem.crlStale),
    (dict(this_update=T0 + dt.timedelta(minutes=10),
          next_update=T0 + dt.timedelta(days=1)), Problem.crlNotYetValid),
    (dict(extensions=((x509.DeltaCRLIndicator(6), True),)),
     Problem.crlUnsupportedCriticalExtension),
], ids=["stale", "not-yet-valid", "delta"])
def test_freshness_and_deltas(ca: PrivateCA, kwargs: dict[str, Any],
                              problem: Problem) -> None:
    with pytest.raises(CrlError) as err:
        check_crl(crl(ca, **kwargs), ca.cert, T0)
    assert err.value.problem is problem


def test_within_skew_is_fresh(ca: PrivateCA) -> None:
    der = crl(ca, next_update=T0 - dt.timedelta(minutes=4))
    assert check_crl(der, ca.cert, T0).number == 7


def test_signature_and_issuer(ca: PrivateCA, tmp_path: Path) -> None:
    other = make_ca(tmp_path / "other", name="Other CA")
    with pytest.raises(CrlError) as err:
        check_crl(crl(ca), other.cert, T0)
    assert err.value.problem is Problem.crlIssuerMismatch
    der = bytearray(crl(ca))
    der[-5] ^= 0x01
    with pytest.raises(CrlError) as err:
        check_crl(bytes(der), ca.cert, T0)
    assert err.value.problem in (Problem.crlBadSignature,
                                 Problem.crlMalformed)
    with pytest.raises(CrlError) as err:
        check_crl(b"\x30\x00", ca.cert, T0)
    assert err.value.problem is Problem.crlMalformed


def test_sha1_crl_follows_its_own_setting(tmp_path: Path) -> None:
    """Field report 6c for CRLs."""
    ca = make_ca(tmp_path / "rsa", key_type="rsa2048")
    der = crl(ca)
    parsed = x509.load_der_x509_crl(der)
    sha1 = resign_sha1(der, parsed.tbs_certlist_bytes, parsed.signature,
                       ca._key, inner=True)
    assert isinstance(x509.load_der_x509_crl(sha1).signature_hash_algorithm,
                      hashes.SHA1)
    got = check_crl(sha1, ca.cert, T0)
    assert got.warnings == ("sha1-signed CRL accepted (ocsp_crl_allow_sha1)",)
    with pytest.raises(CrlError) as err:
        check_crl(sha1, ca.cert, T0, allow_sha1=False)
    assert err.value.problem is Problem.crlSha1Signature
    assert err.value.reason is Reason.weakAlgorithm


def test_ca_crl_lists_revocations_with_reasons(ca: PrivateCA) -> None:
    a = h.issue_direct(ca, ["a.example.com"])
    b = h.issue_direct(ca, ["b.example.com"])
    ca.revoke(b.serial_number, "superseded")
    checked = check_crl(ca.crl().public_bytes(Encoding.DER), ca.cert, T0)
    assert lookup(checked, a) is None
    entry = lookup(checked, b)
    assert entry is not None
    assert (entry.reason, entry.revoked_at) == ("superseded", T0)
    assert check_crl(ca.crl().public_bytes(Encoding.DER), ca.cert,
                     T0).number == (checked.number or 0) + 1


def _name(cert: x509.Certificate) -> Any:
    msg = pki().DistinguishedName.new_message()
    write_name(msg, parse_name(cert.subject))
    return msg


def test_crl_store_over_rpc_from_the_cdp(ca: PrivateCA) -> None:
    clock = FakeClock(T0)
    good = h.issue_direct(ca, ["good.example.com"])
    bad = h.issue_direct(ca, ["bad.example.com"])
    ca.revoke(bad.serial_number, "keyCompromise")
    served: dict[str, bytes] = {"crl": ca.crl().public_bytes(Encoding.DER)}
    audit = MemoryAuditSink()
    with OcspHttpServer(lambda r, n: b"", clock, routes={
            "/crl": lambda: (served["crl"], "application/pkix-crl")}) as srv:
        source = HttpCrlSource({ca.cert.subject.public_bytes():
                                f"http://127.0.0.1:{srv.port}/crl"})
        store = CrlStoreImpl(CrlCache([ca.cert], source, clock),
                             audit=audit, clock=clock)

        async def main() -> tuple[bool, bool, bytes, tuple[str, str]]:
            name = _name(ca.cert)
            async with serve(store, pki().CrlStore) as cap:
                yes = (await cap.contains(name, _serial(bad))).revoked
                no = (await cap.contains(name, _serial(good))).revoked
                der = bytes((await cap.crlFor(name)).crl)
                # After nextUpdate the store refetches; the new CRL
                # carries an unknown critical extension.
                served["crl"] = crl(ca, extensions=((NULL, True),),
                                    next_update=T0 + dt.timedelta(days=9))
                clock.advance(86400 + 1)
                with pytest.raises(Exception) as err:
                    await cap.contains(name, _serial(good))
                return yes, no, der, parse_remote(err.value)

        yes, no, der, (reason, detail) = run(main)
    assert (yes, no) == (True, False)
    listed = x509.load_der_x509_crl(der)
    assert listed.get_revoked_certificate_by_serial_number(
        bad.serial_number) is not None
    assert reason == "policyViolation"
    assert detail.startswith("crlUnsupportedCriticalExtension:")
    assert [(e.operation, e.outcome) for e in audit.events] == [
        ("contains", "ok"), ("contains", "ok"), ("crlFor", "ok"),
        ("contains", "refused")]


def test_crl_store_unknown_issuer(ca: PrivateCA, tmp_path: Path) -> None:
    clock = FakeClock(T0)
    other = make_ca(tmp_path / "other", name="Other CA")
    store = CrlStoreImpl(CrlCache([ca.cert], CallableCrlSource(
        lambda i: ca.crl().public_bytes(Encoding.DER)), clock),
        audit=MemoryAuditSink(), clock=clock)

    async def main() -> tuple[str, str]:
        async with serve(store, pki().CrlStore) as cap:
            with pytest.raises(Exception) as err:
                await cap.crlFor(_name(other.cert))
            return parse_remote(err.value)

    reason, detail = run(main)
    assert reason == "unknownAnchor"
    assert detail.startswith("crlUnknownIssuer:")


def _serial(cert: x509.Certificate) -> bytes:
    n = cert.serial_number
    return n.to_bytes((n.bit_length() + 8) // 8, "big", signed=True)


def test_serial_helper_matches_issuer_module() -> None:
    assert ca_issuer.serial_from(b"\xff" * 16) < 2 ** 127
