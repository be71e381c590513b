"""Parsed X.509 certificates as frozen values (RFC 5280 section 4.1).

DER is parsed once by :func:`parse_certificate` (certificate, every
extension, the key: a malformed certificate fails there); everything
downstream reads the resulting :class:`ParsedCertificate`, whose derived
values are computed on first read and kept (cryptography builds a Python
object per extension and name, which dominates verification time). Names
map to the schema's
``GeneralName`` union members, algorithms to ``AsymmetricAlgorithm`` and
``SignatureScheme`` enumerant names (``""`` when the schema has none, such
as RSA-1024, which policy then refuses as weak).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import ipaddress
import warnings
from typing import Any, Union

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


@dataclasses.dataclass(frozen=True, eq=False)
class DistinguishedNameValue:
    """An X.501 Name: DER, and lazily its RDNs and RFC 4514 text.

    Equal when the DER is. ``source`` is the ``x509.Name`` or a callable
    returning it (a certificate's name is only decoded when read).
    """

    der: bytes
    source: Any = dataclasses.field(repr=False)

    def _name(self) -> x509.Name:
        src = self.source
        return src() if callable(src) else src  # type: ignore[no-any-return]

    @functools.cached_property
    def rdns(self) -> tuple[tuple[tuple[str, str], ...], ...]:
        return tuple(
            tuple((a.oid.dotted_string, str(a.value)) for a in rdn)
            for rdn in self._name().rdns)

    @functools.cached_property
    def rfc4514(self) -> str:
        return self._name().rfc4514_string()

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, DistinguishedNameValue)
                and other.der == self.der)

    def __hash__(self) -> int:
        return hash(self.der)


#: RFC 5280 extensions that conforming CAs MUST mark critical and that
#: a relying party can refuse when they are not (4.2.1.11, 4.2.1.14).
MUST_BE_CRITICAL = ("2.5.29.36", "2.5.29.54")

_SAN, _KU, _EKU, _BC, _NC = ("2.5.29.17", "2.5.29.15", "2.5.29.37",
                             "2.5.29.19", "2.5.29.30")
_SKI, _AKI, _TLS_FEATURE = "2.5.29.14", "2.5.29.35", "1.3.6.1.5.5.7.1.24"
_SCT = "1.3.6.1.4.1.11129.2.4.2"


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


@dataclasses.dataclass(frozen=True, eq=False)
class ParsedCertificate:
    """Everything the platform reads from one certificate.

    :func:`parse_certificate` decodes the DER, every extension and the
    key once (so a malformed certificate fails there); the values below
    are then derived on first read and kept. Equal when the DER is.
    """

    der: bytes
    cert: x509.Certificate = dataclasses.field(repr=False)
    extensions: dict[str, x509.Extension[Any]] = dataclasses.field(
        repr=False)
    public_key: Any = dataclasses.field(repr=False)
    names: tuple[bytes, bytes] = dataclasses.field(repr=False)
    #: Read once at parse time, where cryptography's deprecation warning
    #: for a non-positive serial is contained.
    serial_number: int = 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParsedCertificate) and other.der == self.der

    def __hash__(self) -> int:
        return hash(self.der)

    def _value(self, oid: str) -> Any:
        ext = self.extensions.get(oid)
        return None if ext is None else ext.value

    @functools.cached_property
    def subject(self) -> DistinguishedNameValue:
        return DistinguishedNameValue(self.names[1], lambda: self.cert.subject)

    @functools.cached_property
    def issuer(self) -> DistinguishedNameValue:
        return DistinguishedNameValue(self.names[0], lambda: self.cert.issuer)

    @functools.cached_property
    def serial(self) -> bytes:
        number = self.serial_number
        return number.to_bytes((number.bit_length() + 8) // 8, "big",
                               signed=True)

    @functools.cached_property
    def not_before(self) -> dt.datetime:
        return self.cert.not_valid_before_utc

    @functools.cached_property
    def not_after(self) -> dt.datetime:
        return self.cert.not_valid_after_utc

    @functools.cached_property
    def sans(self) -> tuple[GeneralNameValue, ...]:
        san = self._value(_SAN)
        return tuple(_general_name(g) for g in san) if san else ()

    @functools.cached_property
    def dns_sans(self) -> frozenset[str]:
        """The dNSName SAN values, as written."""
        san = self._value(_SAN)
        return frozenset(san.get_values_for_type(x509.DNSName)
                         if san else ())

    @functools.cached_property
    def ip_sans(self) -> frozenset[bytes]:
        """The iPAddress SAN values, packed."""
        san = self._value(_SAN)
        return frozenset(_packed(ip) for ip in
                         (san.get_values_for_type(x509.IPAddress)
                          if san else ()))

    @functools.cached_property
    def key_usage(self) -> tuple[bool, ...] | None:
        ku = self._value(_KU)
        if not isinstance(ku, x509.KeyUsage):
            return None
        flags = []
        for flag in KEY_USAGE_FLAGS:
            try:
                flags.append(bool(getattr(ku, flag)))
            except ValueError:
                # encipher_only/decipher_only are undefined unless
                # keyAgreement is set (RFC 5280 section 4.2.1.3).
                flags.append(False)
        return tuple(flags)

    @functools.cached_property
    def ekus(self) -> tuple[str, ...]:
        eku = self._value(_EKU)
        return tuple(o.dotted_string for o in eku) if eku else ()

    @functools.cached_property
    def is_ca(self) -> bool:
        bc = self._value(_BC)
        return bool(bc.ca) if isinstance(bc, x509.BasicConstraints) else False

    @functools.cached_property
    def path_len(self) -> int:
        bc = self._value(_BC)
        if isinstance(bc, x509.BasicConstraints) and (
                bc.path_length is not None):
            return bc.path_length
        return -1

    @functools.cached_property
    def permitted(self) -> tuple[GeneralNameValue, ...]:
        nc = self._value(_NC)
        if not isinstance(nc, x509.NameConstraints):
            return ()
        return tuple(_general_name(g) for g in nc.permitted_subtrees or ())

    @functools.cached_property
    def excluded(self) -> tuple[GeneralNameValue, ...]:
        nc = self._value(_NC)
        if not isinstance(nc, x509.NameConstraints):
            return ()
        return tuple(_general_name(g) for g in nc.excluded_subtrees or ())

    @property
    def has_name_constraints(self) -> bool:
        return _NC in self.extensions

    @functools.cached_property
    def scts(self) -> tuple[SctValue, ...]:
        return tuple(
            SctValue(
                log_id=s.log_id,
                timestamp_ms=int(s.timestamp.replace(
                    tzinfo=dt.UTC).timestamp() * 1000),
                extensions=s.extension_bytes,
                signature=s.signature,
                hash_algorithm=s.signature_hash_algorithm.name,
                signature_algorithm=s.signature_algorithm.name,
            )
            for s in (self._value(_SCT) or ())
        )

    @functools.cached_property
    def has_must_staple(self) -> bool:
        feature = self._value(_TLS_FEATURE)
        return bool(feature is not None
                    and x509.TLSFeatureType.status_request in feature)

    @functools.cached_property
    def algorithm(self) -> str:
        return key_algorithm(self.public_key)

    @functools.cached_property
    def signature_scheme(self) -> str:
        return signature_scheme(self.cert)

    @functools.cached_property
    def spki_der(self) -> bytes:
        return self.public_key.public_bytes(  # type: ignore[no-any-return]
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo)

    @functools.cached_property
    def sha256(self) -> bytes:
        return self.cert.fingerprint(hashes.SHA256())

    @functools.cached_property
    def serial_positive(self) -> bool:
        """RFC 5280 section 4.1.2.2 wants a positive serial; relying
        parties should cope with others, so parsing records this
        instead of failing and policy decides (field report 5)."""
        return self.serial_number > 0

    @functools.cached_property
    def ski(self) -> bytes | None:
        """SubjectKeyIdentifier (RFC 5280 section 4.2.1.2), or None."""
        value = self._value(_SKI)
        return value.digest if isinstance(
            value, x509.SubjectKeyIdentifier) else None

    @property
    def has_aki(self) -> bool:
        return _AKI in self.extensions

    @functools.cached_property
    def aki_key_id(self) -> bytes | None:
        """The AuthorityKeyIdentifier's keyIdentifier (4.2.1.1)."""
        value = self._value(_AKI)
        return value.key_identifier if isinstance(
            value, x509.AuthorityKeyIdentifier) else None

    @functools.cached_property
    def aki_names_issuer(self) -> bool:
        """The AKI names the issuer by DN and serial."""
        value = self._value(_AKI)
        return isinstance(value, x509.AuthorityKeyIdentifier) and (
            value.authority_cert_issuer is not None
            or value.authority_cert_serial_number is not None)

    @functools.cached_property
    def common_names(self) -> tuple[str, ...]:
        """The subject's commonName values, in order (BR 7.1.4.3)."""
        return tuple(str(a.value) for a in
                     self.cert.subject.get_attributes_for_oid(
                         x509.NameOID.COMMON_NAME))

    @functools.cached_property
    def noncritical_must_be_critical(self) -> tuple[str, ...]:
        """Extensions RFC 5280 says conforming CAs MUST mark critical
        (policyConstraints 4.2.1.11, inhibitAnyPolicy 4.2.1.14) that
        this certificate carries non-critical, by dotted OID."""
        return tuple(oid for oid in MUST_BE_CRITICAL
                     if oid in self.extensions
                     and not self.extensions[oid].critical)

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
        key = self.public_key
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
    return DistinguishedNameValue(name.public_bytes(), name)


def _tlv_end(data: bytes, at: int) -> tuple[int, int]:
    """(start of contents, end) of the DER TLV at ``at`` (X.690 8.1)."""
    first = data[at + 1]
    if first < 0x80:
        return at + 2, at + 2 + first
    count = first & 0x7F
    length = int.from_bytes(data[at + 2:at + 2 + count], "big")
    return at + 2 + count, at + 2 + count + length


def tbs_names(tbs: bytes) -> tuple[bytes, bytes]:
    """(issuer DER, subject DER) as encoded in a TBSCertificate.

    RFC 5280 section 4.1: version [0] (optional), serialNumber,
    signature, issuer, validity, subject.
    """
    at, _end = _tlv_end(tbs, 0)
    if tbs[at] == 0xA0:
        at = _tlv_end(tbs, at)[1]
    for _ in range(2):  # serialNumber, signature
        at = _tlv_end(tbs, at)[1]
    issuer_end = _tlv_end(tbs, at)[1]
    issuer = tbs[at:issuer_end]
    at = _tlv_end(tbs, issuer_end)[1]  # validity
    return issuer, tbs[at:_tlv_end(tbs, at)[1]]


def _packed(ip: Any) -> bytes:
    if isinstance(ip, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return ip.network_address.packed + ip.netmask.packed
    return ip.packed  # type: ignore[no-any-return]


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


def _parse(der: bytes, cert: x509.Certificate) -> ParsedCertificate:
    # Decoding every extension and the key here is what makes a
    # malformed certificate fail at parse time rather than later.
    extensions = {e.oid.dotted_string: e for e in cert.extensions}
    parsed = ParsedCertificate(
        der=der, cert=cert, extensions=extensions,
        public_key=cert.public_key(),
        names=tbs_names(cert.tbs_certificate_bytes),
        serial_number=cert.serial_number)
    return parsed


#: Schema RevocationReason names to cryptography's flags, and back.
REVOCATION_REASONS: dict[str, x509.ReasonFlags] = {
    "unspecified": x509.ReasonFlags.unspecified,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "caCompromise": x509.ReasonFlags.ca_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "certificateHold": x509.ReasonFlags.certificate_hold,
    "removeFromCrl": x509.ReasonFlags.remove_from_crl,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
    "aaCompromise": x509.ReasonFlags.aa_compromise,
}
REASON_NAMES = {flag: name for name, flag in REVOCATION_REASONS.items()}
