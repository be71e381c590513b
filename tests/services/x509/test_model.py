"""What ParsedCertificate decodes, and when a malformed part is refused.

Parsing reads the DER structure only; the extensions and the key are
decoded on first read, which raises the parse error (``policyViolation``,
``malformed certificate: ...``). The verifier decodes the leaf's
extensions before it names any other fault and its key in the algorithm
check, after the leaf's name checks; a trust store refuses a malformed
anchor on entry; an anchor no path reaches is never decoded.
"""

from __future__ import annotations

import datetime as dt
import gc
import warnings

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from services._runtime.audit import MemoryAuditSink
from services._runtime.clock import FakeClock
from services._runtime.schema import pki
from services.x509.boundary import reason_of
from services.x509.certificate_impl import CertificateImpl
from services.x509.errors import (
    CertificateParseError,
    Reason,
    VerificationError,
)
from services.x509.model import parse_certificate
from services.x509.policy import WEB_PKI_LENIENT, verify_chain
from services.x509.trust import TrustStoreCore
from services.x509.truststore_impl import TrustStoreImpl
from tests.services.x509 import derhelp
from tests.services.x509 import pkifactory as f
from tests.services.x509.rpc import run, serve

#: policyConstraints (RFC 5280 4.2.1.11) whose value is an OCTET STRING
#: where a SEQUENCE belongs: cryptography cannot decode it.
GARBLED = x509.UnrecognizedExtension(
    x509.ObjectIdentifier("2.5.29.36"), b"\x04\x00")


def garbled(issuer: f.Issued | None, cn: str, *,
            not_after: dt.datetime = f.T0 + 90 * f.DAY) -> bytes:
    """A certificate for ``cn`` carrying :data:`GARBLED` (self-signed
    CA when ``issuer`` is None)."""
    key = f.ec_key(cn)
    subject = f.name(cn)
    builder = (
        x509.CertificateBuilder().subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key()).serial_number(77)
        .not_valid_before(f.T0 - 30 * f.DAY).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=issuer is None,
                                             path_length=None),
                       critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]),
                       critical=False)
        .add_extension(GARBLED, critical=True))
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    return cert.public_bytes(Encoding.DER)


def test_a_malformed_extension_fails_its_first_read() -> None:
    h = f.hierarchy()
    parsed = parse_certificate(garbled(h.inter, f.HOST))
    assert parsed.subject.rfc4514 == f"CN={f.HOST},O=capOS"
    for read in (parsed.decode, lambda: parsed.ekus,
                 lambda: parsed.is_ca):
        with pytest.raises(CertificateParseError) as info:
            read()
        assert info.value.reason is Reason.policyViolation
        assert info.value.detail.startswith("malformed certificate: ")


def test_a_malformed_leaf_is_named_before_its_other_faults() -> None:
    h = f.hierarchy()
    expired = garbled(h.inter, f.HOST, not_after=f.T0 - f.DAY)
    with pytest.raises(CertificateParseError) as info:
        verify_chain(parse_certificate(expired),
                     [parse_certificate(h.inter.der)],
                     [parse_certificate(h.root.der)], "tlsServerAuth",
                     f.T0, f.HOST, WEB_PKI_LENIENT)
    assert info.value.reason is Reason.policyViolation
    assert info.value.detail.startswith("malformed certificate: ")


def test_a_malformed_intermediate_offered_is_refused() -> None:
    h = f.hierarchy()
    decoy = garbled(h.root, "Decoy CA")
    with pytest.raises(CertificateParseError) as info:
        verify_chain(parse_certificate(h.leaf.der),
                     [parse_certificate(h.inter.der),
                      parse_certificate(decoy)],
                     [parse_certificate(h.root.der)], "tlsServerAuth",
                     f.T0, f.HOST, WEB_PKI_LENIENT)
    assert info.value.detail.startswith("malformed certificate: ")


def test_an_anchor_no_path_reaches_is_not_decoded() -> None:
    h = f.hierarchy()
    stray = parse_certificate(garbled(None, "Stray Root"))
    got = verify_chain(parse_certificate(h.leaf.der),
                       [parse_certificate(h.inter.der)],
                       [stray, parse_certificate(h.root.der)],
                       "tlsServerAuth", f.T0, f.HOST, WEB_PKI_LENIENT)
    assert got.anchor.der == h.root.der
    assert "extensions" not in vars(stray)


def test_a_trust_store_refuses_a_malformed_anchor_on_entry() -> None:
    audit = MemoryAuditSink()
    store = TrustStoreImpl(TrustStoreCore(()), writable=True, audit=audit,
                           clock=FakeClock(f.T0))
    root = parse_certificate(garbled(None, "Garbled Root"))

    async def main() -> tuple[str, str]:
        async with serve(store, pki().TrustStore) as rw:
            with pytest.raises(Exception) as info:
                await rw.addAnchor(CertificateImpl(root),
                                   pki().AnchorPin.new_message())
            return reason_of(info.value)

    reason, detail = run(main)
    assert reason == "policyViolation"
    assert detail.startswith("malformed certificate: ")
    assert store.core.anchors == ()
    assert [(e.operation, e.outcome) for e in audit.events] == [
        ("addAnchor", "refused")]


@pytest.mark.parametrize("serial", [1, 0x7F, 0x80, 0xFF, 2**64, 2**159,
                                    0, -1, -0x81, -5])
def test_serial_read_without_an_escaping_warning(serial: int) -> None:
    h = f.hierarchy()
    der = derhelp.resign(f.leaf(h.inter).der, h.inter.key,
                         derhelp.with_serial(serial))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parsed = parse_certificate(der)
    assert parsed.serial_number == serial
    assert parsed.serial_positive is (serial > 0)


def test_names_are_the_encoded_issuer_and_subject() -> None:
    h = f.hierarchy()
    for issued in (h.root, h.inter, h.leaf):
        parsed = parse_certificate(issued.der)
        assert parsed.issuer.der == issued.cert.issuer.public_bytes()
        assert parsed.subject.der == issued.cert.subject.public_bytes()
        assert parsed.is_self_issued is (issued is h.root)


def test_verification_leaves_no_reference_cycles() -> None:
    # Certificates, their decoded extensions and a diagnosis's search
    # are freed when dropped, not left for the cyclic collector.
    h = f.hierarchy()
    forged = f.leaf(h.inter, signer=f.ec_key("forger"))

    def verify(leaf: bytes, host: str) -> str:
        try:
            verify_chain(parse_certificate(leaf),
                         [parse_certificate(h.inter.der)],
                         [parse_certificate(h.root.der)], "tlsServerAuth",
                         f.T0, host, WEB_PKI_LENIENT)
        except CertificateParseError as err:
            return err.reason.value
        except VerificationError as err:
            return err.reason.value
        return "valid"

    verify(h.leaf.der, f.HOST)  # warm caches (public suffixes, policies)
    gc.collect()
    gc.disable()
    try:
        outcomes = [verify(h.leaf.der, f.HOST),
                    verify(h.leaf.der, "other.example"),
                    verify(forged.der, f.HOST)]
        assert gc.collect() == 0
    finally:
        gc.enable()
    assert outcomes == ["valid", "nameMismatch", "signatureMismatch"]


def test_a_leaf_refused_for_its_name_has_its_key_left_undecoded() -> None:
    h = f.hierarchy()
    leaf = parse_certificate(h.leaf.der)
    with pytest.raises(VerificationError) as info:
        verify_chain(leaf, [parse_certificate(h.inter.der)],
                     [parse_certificate(h.root.der)], "tlsServerAuth",
                     f.T0, "other.example", WEB_PKI_LENIENT)
    assert info.value.reason is Reason.nameMismatch
    assert "public_key" not in vars(leaf)
    assert "extensions" in vars(leaf)


def test_sha256_is_the_fingerprint_of_every_root_and_limbo_cert() -> None:
    """``sha256`` hashes the DER as given; it must equal cryptography's
    fingerprint for every Mozilla root and every certificate of the
    limbo corpus that parses (odd serials and encodings included)."""
    from bootmanifest import build
    from tools import limbo

    extra = build.ExtraAnchor("acme-server-root", f.hierarchy().root.der)
    inputs = build.read_inputs(extra_anchors=(extra,))
    ders = {r.der for r in inputs.roots.roots}
    for case in limbo.load():
        ders.update((case.leaf, *case.intermediates, *case.anchors))
    checked = 0
    for der in ders:
        try:
            parsed = parse_certificate(der)
        except CertificateParseError:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert parsed.sha256 == parsed.cert.fingerprint(
                hashes.SHA256()), parsed.der.hex()[:80]
        checked += 1
    assert checked > 1000
