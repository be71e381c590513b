"""Parsed X.509 certificates as frozen values (RFC 5280 section 4.1).

DER is parsed once by :func:`parse_certificate`; everything downstream
reads the resulting :class:`ParsedCertificate`. Names map to the schema's
``GeneralName`` union members, algorithms to ``AsymmetricAlgorithm`` and
``SignatureScheme`` enumerant names (``""`` when the schema has none, such
as RSA-1024, which policy then refuses as weak).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import warnings
from typing import Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID

from services.x509.errors import CertificateParseError

NameValue = Union[str, bytes, "DistinguishedNameValue", tuple[str, bytes]]

EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH.dotted_string: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING.dotted_string: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION.dotted_string: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING.dotted_string: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING.dotted_string: "ocspSigning",
    "2.5.29.37.0": "anyExtendedKeyUsage",
}

KEY_USAGE_FLAGS = (
    "digital_signature", "content_commitment", "key_encipherment",
    "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
    "encipher_only", "decipher_only",
)


@dataclasses.dataclass(frozen=True)
class DistinguishedNameValue:
    """An X.501 Name: RDNs of (oid, value) pairs, DER and RFC 4514."""

    rdns: tuple[tuple[tuple[str, str], ...], ...]
    der: bytes
    rfc4514: str


@dataclasses.dataclass(frozen=True)
class GeneralNameValue:
    """One GeneralName; ``kind`` is the schema union member name."""

    kind: str
    value: NameValue


@dataclasses.dataclass(frozen=True)
class SctValue:
    """An embedded SCT (RFC 6962 section 3.3)."""

    log_id: bytes
    timestamp_ms: int
    extensions: bytes
    signature: bytes
    hash_algorithm: str
    signature_algorithm: str


@dataclasses.dataclass(frozen=True)
class ParsedCertificate:
    """Everything the platform reads from one certificate."""

    der: bytes
    cert: x509.Certificate
    subject: DistinguishedNameValue
    issuer: DistinguishedNameValue
    serial: bytes
    not_before: dt.datetime
    not_after: dt.datetime
    sans: tuple[GeneralNameValue, ...]
    key_usage: tuple[bool, ...] | None
    ekus: tuple[str, ...]
    is_ca: bool
    path_len: int
    permitted: tuple[GeneralNameValue, ...]
    excluded: tuple[GeneralNameValue, ...]
    scts: tuple[SctValue, ...]
    has_must_staple: bool
    algorithm: str
    signature_scheme: str
    spki_der: bytes
    sha256: bytes
    #: RFC 5280 section 4.1.2.2 wants a positive serial; relying parties
    #: should cope with others, so parsing records this instead of failing
    #: and policy decides (field report 5).
    serial_positive: bool = True
    #: SubjectKeyIdentifier (RFC 5280 section 4.2.1.2), or None.
    ski: bytes | None = None
    #: AuthorityKeyIdentifier (section 4.2.1.1): present at all, its
    #: keyIdentifier, and whether it names the issuer by DN and serial.
    has_aki: bool = False
    aki_key_id: bytes | None = None
    aki_names_issuer: bool = False
    #: The subject's commonName values, in order (CA/B BR 7.1.4.3).
    common_names: tuple[str, ...] = ()
    #: Extensions RFC 5280 says conforming CAs MUST mark critical
    #: (policyConstraints 4.2.1.11, inhibitAnyPolicy 4.2.1.14) but that
    #: this certificate carries non-critical, by dotted OID.
    noncritical_must_be_critical: tuple[str, ...] = ()

    @property
    def is_self_issued(self) -> bool:
        return self.subject.der == self.issuer.der

    @property
    def validity(self) -> tuple[dt.datetime, dt.datetime]:
        return self.not_before, self.not_after

    @property
    def kind(self) -> str:
        """The schema CertificateKind name."""
        if not self.is_ca:
            return "endEntity"
        return "trustAnchor" if self.is_self_issued else "intermediate"

    def fingerprint(self, algorithm: str) -> bytes:
        """Digest of the DER under a schema HashAlgorithm name."""
        return self.cert.fingerprint(HASHES[algorithm]())

    @property
    def key_label(self) -> str:
        """The schema algorithm name, or e.g. ``rsa1024`` when outside it."""
        if self.algorithm:
            return self.algorithm
        key = self.cert.public_key()
        if isinstance(key, rsa.RSAPublicKey):
            return f"rsa{key.key_size}"
        if isinstance(key, ec.EllipticCurvePublicKey):
            return f"ec-{key.curve.name}"
        return type(key).__name__

    def describe(self) -> str:
        """Serial plus SHA-256 fingerprint, the form logs and audit use."""
        return f"serial={self.serial.hex()} sha256={self.sha256.hex()}"


HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def parse_name(name: x509.Name) -> DistinguishedNameValue:
    rdns = tuple(
        tuple((a.oid.dotted_string, str(a.value)) for a in rdn)
        for rdn in name.rdns
    )
    return DistinguishedNameValue(rdns, name.public_bytes(),
                                  name.rfc4514_string())


def _general_name(gn: x509.GeneralName) -> GeneralNameValue:
    if isinstance(gn, x509.DNSName):
        return GeneralNameValue("dnsName", gn.value)
    if isinstance(gn, x509.IPAddress):
        ip = gn.value
        if isinstance(ip, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            packed = ip.network_address.packed + ip.netmask.packed
        else:
            packed = ip.packed
        return GeneralNameValue("ipAddress", packed)
    if isinstance(gn, x509.RFC822Name):
        return GeneralNameValue("rfc822Name", gn.value)
    if isinstance(gn, x509.UniformResourceIdentifier):
        return GeneralNameValue("uri", gn.value)
    if isinstance(gn, x509.DirectoryName):
        return GeneralNameValue("directoryName", parse_name(gn.value))
    if isinstance(gn, x509.RegisteredID):
        return GeneralNameValue("registeredId", gn.value.dotted_string)
    if isinstance(gn, x509.OtherName):
        return GeneralNameValue(
            "otherName", (gn.type_id.dotted_string, gn.value))
    raise CertificateParseError(f"unsupported GeneralName {type(gn)}")


def key_algorithm(key: object) -> str:
    """Schema AsymmetricAlgorithm name, or "" if outside the schema."""
    if isinstance(key, rsa.RSAPublicKey):
        return {2048: "rsa2048", 3072: "rsa3072",
                4096: "rsa4096"}.get(key.key_size, "")
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "ecdsaP256", "secp384r1": "ecdsaP384",
                "secp521r1": "ecdsaP521"}.get(key.curve.name, "")
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "ed448"
    return ""


_SIG_SCHEMES = {
    "1.2.840.113549.1.1.11": "rsaPkcs1Sha256",
    "1.2.840.113549.1.1.12": "rsaPkcs1Sha384",
    "1.2.840.113549.1.1.13": "rsaPkcs1Sha512",
    "1.2.840.113549.1.1.5": "rsaPkcs1Sha1",
    "1.2.840.10045.4.3.2": "ecdsaP256Sha256",
    "1.2.840.10045.4.3.3": "ecdsaP384Sha384",
    "1.2.840.10045.4.3.4": "ecdsaP521Sha512",
    "1.2.840.10045.4.1": "ecdsaSha1",
    "1.3.101.112": "ed25519",
    "1.3.101.113": "ed448",
}

_PSS = {"sha256": "rsaPssSha256", "sha384": "rsaPssSha384",
        "sha512": "rsaPssSha512"}


def signature_scheme(cert: x509.Certificate) -> str:
    """Schema SignatureScheme name of the issuer's signature, or ""."""
    oid = cert.signature_algorithm_oid.dotted_string
    if oid == "1.2.840.113549.1.1.10":
        h = cert.signature_hash_algorithm
        return _PSS.get(h.name if h else "", "")
    return _SIG_SCHEMES.get(oid, "")


def _ext(cert: x509.Certificate, kind: type) -> object | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def parse_certificate(der: bytes) -> ParsedCertificate:
    """Parse DER once.

    :raises CertificateParseError: malformed DER or extensions
        (reason ``policyViolation``).
    """
    try:
        # cryptography warns (and will one day refuse) on a non-positive
        # serial; the warning must not escape when warnings are errors.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            cert = x509.load_der_x509_certificate(der)
            return _parse(der, cert)
    except CertificateParseError:
        raise
    except (ValueError, TypeError, x509.DuplicateExtension,
            x509.UnsupportedGeneralNameType) as err:
        raise CertificateParseError(
            f"malformed certificate: {str(err)[:120]}") from err


#: RFC 5280 extensions that conforming CAs MUST mark critical and that
#: a relying party can refuse when they are not (4.2.1.11, 4.2.1.14).
MUST_BE_CRITICAL = ("2.5.29.36", "2.5.29.54")


def _parse(der: bytes, cert: x509.Certificate) -> ParsedCertificate:
    san = _ext(cert, x509.SubjectAlternativeName)
    sans = tuple(_general_name(g) for g in san) if san else ()  # type: ignore
    ku = _ext(cert, x509.KeyUsage)
    key_usage = None
    if isinstance(ku, x509.KeyUsage):
        flags = []
        for flag in KEY_USAGE_FLAGS:
            try:
                flags.append(bool(getattr(ku, flag)))
            except ValueError:
                # encipher_only/decipher_only are undefined unless
                # keyAgreement is set (RFC 5280 section 4.2.1.3).
                flags.append(False)
        key_usage = tuple(flags)
    eku = _ext(cert, x509.ExtendedKeyUsage)
    ekus = tuple(o.dotted_string for o in eku) if eku else ()  # type: ignore
    bc = _ext(cert, x509.BasicConstraints)
    is_ca = bool(bc.ca) if isinstance(bc, x509.BasicConstraints) else False
    path_len = -1
    if isinstance(bc, x509.BasicConstraints) and bc.path_length is not None:
        path_len = bc.path_length
    nc = _ext(cert, x509.NameConstraints)
    permitted: tuple[GeneralNameValue, ...] = ()
    excluded: tuple[GeneralNameValue, ...] = ()
    if isinstance(nc, x509.NameConstraints):
        permitted = tuple(_general_name(g)
                          for g in nc.permitted_subtrees or ())
        excluded = tuple(_general_name(g) for g in nc.excluded_subtrees or ())
    scts_ext = _ext(cert, x509.PrecertificateSignedCertificateTimestamps)
    scts = tuple(
        SctValue(
            log_id=s.log_id,
            timestamp_ms=int(s.timestamp.replace(
                tzinfo=dt.UTC).timestamp() * 1000),
            extensions=s.extension_bytes,
            signature=s.signature,
            hash_algorithm=s.signature_hash_algorithm.name,
            signature_algorithm=s.signature_algorithm.name,
        )
        for s in (scts_ext or ())  # type: ignore[attr-defined]
    )
    tls_feature = _ext(cert, x509.TLSFeature)
    must_staple = bool(
        tls_feature is not None
        and x509.TLSFeatureType.status_request in tls_feature  # type: ignore
    )
    ski_ext = _ext(cert, x509.SubjectKeyIdentifier)
    aki_ext = _ext(cert, x509.AuthorityKeyIdentifier)
    aki_names_issuer = isinstance(aki_ext, x509.AuthorityKeyIdentifier) and (
        aki_ext.authority_cert_issuer is not None
        or aki_ext.authority_cert_serial_number is not None)
    must_be_critical = tuple(
        e.oid.dotted_string for e in cert.extensions
        if e.oid.dotted_string in MUST_BE_CRITICAL and not e.critical)
    common_names = tuple(
        str(a.value) for a in cert.subject.get_attributes_for_oid(
            x509.NameOID.COMMON_NAME))
    pub = cert.public_key()
    spki = pub.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)
    number = cert.serial_number
    serial = number.to_bytes((number.bit_length() + 8) // 8, "big",
                             signed=True)
    return ParsedCertificate(
        der=der, cert=cert,
        subject=parse_name(cert.subject), issuer=parse_name(cert.issuer),
        serial=serial,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sans=sans, key_usage=key_usage, ekus=ekus, is_ca=is_ca,
        path_len=path_len, permitted=permitted, excluded=excluded,
        scts=scts, has_must_staple=must_staple,
        algorithm=key_algorithm(pub),
        signature_scheme=signature_scheme(cert),
        spki_der=spki, sha256=cert.fingerprint(hashes.SHA256()),
        serial_positive=number > 0,
        ski=(ski_ext.digest
             if isinstance(ski_ext, x509.SubjectKeyIdentifier) else None),
        has_aki=aki_ext is not None,
        aki_key_id=(aki_ext.key_identifier
                    if isinstance(aki_ext, x509.AuthorityKeyIdentifier)
                    else None),
        aki_names_issuer=aki_names_issuer,
        common_names=common_names,
        noncritical_must_be_critical=must_be_critical,
    )
