"""Test certificates built with pyca at a fixed time T0 (EC P-256).

Generated in-process, not vector files: every case needs a fresh key
relationship (a leaf signed by the wrong key, an over-long chain), which
a generator expresses more plainly than a directory of PEMs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

T0 = dt.datetime(2026, 1, 15, 12, 0, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
HOST = "service.capos.test"

Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@functools.cache
def ec_key(label: str) -> ec.EllipticCurvePrivateKey:
    """One P-256 key per label, reused across tests for speed."""
    del label
    return ec.generate_private_key(ec.SECP256R1())


@dataclasses.dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: Key

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(Encoding.DER)


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "capOS"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ski(key: Key) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(key.public_key())


def ca(cn: str, issuer: Issued | None = None, *, key: Key | None = None,
       serial: int = 1, subject: x509.Name | None = None,
       signer: Key | None = None,
       not_before: dt.datetime = T0 - 365 * DAY,
       not_after: dt.datetime = T0 + 3650 * DAY,
       path_length: int | None = None,
       ekus: tuple[x509.ObjectIdentifier, ...] | None = None,
       permitted: list[x509.GeneralName] | None = None,
       excluded: list[x509.GeneralName] | None = None,
       hash_alg: Any = None) -> Issued:
    """A CA certificate, self-signed when ``issuer`` is None.

    :param subject: override the subject name (default ``name(cn)``).
    :param signer: sign with this key instead of the issuer's.
    :param ekus: add an EKU extension with these purposes.
    :param permitted: add critical name constraints.
    """
    key = key or ec_key(cn)
    subject = subject or name(cn)
    signer_key = signer or (issuer.key if issuer else key)
    signer_name = issuer.cert.subject if issuer else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(signer_name)
        .public_key(key.public_key()).serial_number(serial)
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True,
                                             path_length=path_length),
                       critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False,
            key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(_ski(key), critical=False)
    )
    if issuer is not None or signer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                signer_key.public_key()), critical=False)
    if ekus is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(ekus)),
                                        critical=False)
    if permitted is not None or excluded is not None:
        builder = builder.add_extension(x509.NameConstraints(
            permitted_subtrees=permitted, excluded_subtrees=excluded),
            critical=True)
    return Issued(builder.sign(signer_key, hash_alg or hashes.SHA256()),
                  key)


def leaf(issuer: Issued, *, host: str = HOST, key: Key | None = None,
         signer: Key | None = None, serial: int = 0x1234,
         not_before: dt.datetime = T0 - DAY,
         not_after: dt.datetime = T0 + 90 * DAY,
         ekus: tuple[x509.ObjectIdentifier, ...] | None = (
             ExtendedKeyUsageOID.SERVER_AUTH,
             ExtendedKeyUsageOID.CLIENT_AUTH),
         sans: list[x509.GeneralName] | None = None,
         subject: x509.Name | None = None,
         hash_alg: Any = None) -> Issued:
    """An end-entity certificate for ``host``.

    :param signer: sign with this key instead of the issuer's (a forged
        signature under the issuer's name).
    :param ekus: None leaves the EKU extension out.
    :param sans: the SAN entries (default ``[DNSName(host)]``).
    """
    key = key or ec_key("leaf")
    signer_key = signer or issuer.key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject or name(host))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key()).serial_number(serial)
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                       critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectAlternativeName(
            sans if sans is not None else [x509.DNSName(host)]),
            critical=False)
        .add_extension(_ski(key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.key.public_key()), critical=False)
    )
    if ekus is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(ekus)),
                                        critical=False)
    return Issued(builder.sign(signer_key, hash_alg or hashes.SHA256()),
                  key)


@dataclasses.dataclass(frozen=True)
class Hierarchy:
    root: Issued
    inter: Issued
    leaf: Issued

    @property
    def chain(self) -> list[bytes]:
        return [self.leaf.der, self.inter.der]


@functools.cache
def hierarchy(tag: str = "A") -> Hierarchy:
    root = ca(f"Root {tag}")
    inter = ca(f"Intermediate {tag}", root, serial=2)
    return Hierarchy(root, inter, leaf(inter))
