"""Building and signing what the private CA issues, with cryptography's
builders: the root, leaves, the delegated OCSP responder certificate
and CRLs.

Pure apart from the signature itself: time (``now``) and serials come
from the caller. Profiles:

- Every certificate's notBefore is ``now - skew`` (field report 8f).
  A leaf's notAfter is notBefore plus the admitted lifetime, so the
  stated lifetime is exactly what the policy admitted (a 10-day
  certificate stays short-lived in DESIGN.md section 6's sense).
  cryptography writes UTCTime before 2050 and GeneralizedTime from 2050
  on (RFC 5280 section 4.1.2.5).
- Leaves: critical basicConstraints CA=false, critical keyUsage
  digitalSignature (plus keyEncipherment for RSA), EKU, SAN, SKI, AKI,
  AIA with the OCSP URL (RFC 5280 4.2.2.1), CRL distribution point
  (4.2.1.13), and TLS feature status_request when must-staple
  (RFC 7633).
- The responder: EKU id-kp-OCSPSigning and id-pkix-ocsp-nocheck
  (RFC 6960 section 4.2.2.2.1), keyUsage digitalSignature.
- CRLs: v2 with CRLNumber and AKI, reason codes per entry (RFC 5280
  section 5).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    NameOID,
)

from services.ca.model import (
    Admitted,
    CAConfig,
    IssuedRecord,
)
from services.x509.model import REVOCATION_REASONS

#: Largest serial: 20 octets, positive (RFC 5280 section 4.1.2.2).
SERIAL_BYTES = 16


def serial_from(random: bytes) -> int:
    """A positive serial from at least 16 random octets (CA/B BR 7.1)."""
    if len(random) < SERIAL_BYTES:
        raise ValueError("a serial needs 16 random octets")
    # Clear the top bit: a positive INTEGER of at most 16 octets.
    value = int.from_bytes(random[:SERIAL_BYTES], "big")
    return (value & ((1 << (8 * SERIAL_BYTES - 1)) - 1)) or 1


def new_key(key_type: str) -> Any:
    """A fresh private key of a schema ``AsymmetricAlgorithm`` name."""
    curves: dict[str, Callable[[], ec.EllipticCurve]] = {
        "ecdsaP256": ec.SECP256R1, "ecdsaP384": ec.SECP384R1,
        "ecdsaP521": ec.SECP521R1}
    if key_type in curves:
        return ec.generate_private_key(curves[key_type]())
    if key_type.startswith("rsa"):
        return rsa.generate_private_key(65537, int(key_type[3:]))
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported CA key type {key_type}")


def signing_hash(key: Any) -> hashes.SHA256 | hashes.SHA384 | None:
    """SHA-256 for RSA and EC keys; None for EdDSA (RFC 8410)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and (
            key.curve.key_size > 256):
        return hashes.SHA384()
    return hashes.SHA256()


def _ku(*, sign: bool = False, encipher: bool = False,
        cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign, content_commitment=False,
        key_encipherment=encipher, data_encipherment=False,
        key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
        encipher_only=False, decipher_only=False)


def new_root(key: Any, config: CAConfig, serial: int,
             now: dt.datetime) -> x509.Certificate:
    """The CA's self-signed certificate."""
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "capOS"),
        x509.NameAttribute(NameOID.COMMON_NAME, config.name)])
    skew = dt.timedelta(seconds=config.skew_seconds)
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(serial)
        .not_valid_before(now - skew)
        .not_valid_after(now + dt.timedelta(days=config.root_lifetime_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0),
                       critical=True)
        .add_extension(_ku(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(
            key.public_key()), critical=False)
        .sign(key, signing_hash(key))
    )


def _common(ca_cert: x509.Certificate, public_key: Any, serial: int,
            not_before: dt.datetime,
            not_after: dt.datetime) -> x509.CertificateBuilder:
    if not_after > ca_cert.not_valid_after_utc:
        # RFC 5280 6.1.3: nothing may outlive the CA that vouches for
        # it; cut the validity rather than issue what will not verify.
        not_after = ca_cert.not_valid_after_utc
    return (
        x509.CertificateBuilder()
        .issuer_name(ca_cert.subject)
        .public_key(public_key).serial_number(serial)
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(
            public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False)
    )


def issue_leaf(ca_cert: x509.Certificate, ca_key: Any, admitted: Admitted,
               serial: int, now: dt.datetime,
               config: CAConfig) -> x509.Certificate:
    """Sign one admitted request."""
    not_before = now - dt.timedelta(seconds=config.skew_seconds)
    first = admitted.sans[0]
    cn = [x509.NameAttribute(NameOID.COMMON_NAME, first.value)] if (
        isinstance(first, x509.DNSName) and len(first.value) <= 64) else []
    is_rsa = isinstance(admitted.public_key, rsa.RSAPublicKey)
    builder = (
        _common(ca_cert, admitted.public_key, serial, not_before,
                not_before + admitted.lifetime)
        .subject_name(x509.Name(cn))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                       critical=True)
        .add_extension(_ku(sign=True, encipher=is_rsa), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(admitted.ekus)),
                       critical=False)
        # RFC 5280 4.2.1.6: the SAN is critical when the subject is empty.
        .add_extension(x509.SubjectAlternativeName(list(admitted.sans)),
                       critical=not cn)
        .add_extension(x509.AuthorityInformationAccess([
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP,
                x509.UniformResourceIdentifier(config.ocsp_url))]),
            critical=False)
        .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(config.crl_url)],
            relative_name=None, reasons=None, crl_issuer=None)]),
            critical=False)
    )
    if admitted.must_staple:
        builder = builder.add_extension(
            x509.TLSFeature([x509.TLSFeatureType.status_request]),
            critical=False)
    return builder.sign(ca_key, signing_hash(ca_key))


def issue_responder(ca_cert: x509.Certificate, ca_key: Any,
                    responder_key: Any, serial: int, now: dt.datetime,
                    config: CAConfig) -> x509.Certificate:
    """The delegated OCSP signer (RFC 6960 section 4.2.2.2)."""
    not_before = now - dt.timedelta(seconds=config.skew_seconds)
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "capOS"),
        x509.NameAttribute(NameOID.COMMON_NAME,
                           f"{config.name} OCSP Responder")])
    return (
        _common(ca_cert, responder_key.public_key(), serial, not_before,
                not_before + dt.timedelta(
                    days=config.responder_lifetime_days))
        .subject_name(name)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                       critical=True)
        .add_extension(_ku(sign=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .sign(ca_key, signing_hash(ca_key))
    )


def build_crl(ca_cert: x509.Certificate, ca_key: Any,
              revoked: Iterable[IssuedRecord], number: int,
              now: dt.datetime,
              config: CAConfig) -> x509.CertificateRevocationList:
    """A v2 CRL of every revoked record, valid for the configured time."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(seconds=config.crl_validity_seconds))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False)
    )
    for record in revoked:
        assert record.revoked_at is not None
        entry = (x509.RevokedCertificateBuilder()
                 .serial_number(record.serial)
                 .revocation_date(record.revoked_at))
        if record.reason != "unspecified":
            # RFC 5280 5.3.1: omit the reasonCode rather than write
            # unspecified.
            entry = entry.add_extension(
                x509.CRLReason(REVOCATION_REASONS[record.reason]),
                critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(ca_key, signing_hash(ca_key))
