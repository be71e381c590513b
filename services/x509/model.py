"""Parsed X.509 certificates as frozen values (RFC 5280 section 4.1).

DER is parsed once by :func:`parse_certificate` (the certificate
structure: malformed DER fails there); everything downstream reads the
resulting :class:`ParsedCertificate`, which decodes the extensions and
the key on first read and keeps every derived value (cryptography builds
a Python object per extension and name, which dominated verification
time when done for every certificate a peer sent). A malformed extension
or key fails its first read with :class:`CertificateParseError`, the
error parsing raised before; the verifier reads the leaf's first, and a
certificate no check reads (an anchor that no path reaches) costs only
the structural parse. Names map to the schema's
``GeneralName`` union members, algorithms to ``AsymmetricAlgorithm`` and
``SignatureScheme`` enumerant names (``""`` when the schema has none, such
as RSA-1024, which policy then refuses as weak).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import ipaddress
import warnings
from collections.abc import Callable
from typing import Any, Generic, TypeVar, Union, overload

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID

from services._runtime import deferred
from services.x509.errors import CertificateParseError

T = TypeVar("T")


class once(Generic[T]):  # noqa: N801 (read like functools.cached_property)
    """A derived attribute computed on first read and kept.

    Like ``functools.cached_property`` without its per-read lock (3.11
    takes one on every first read; the values here are pure, so two
    threads computing one twice is harmless). The value lands in the
    instance ``__dict__``, so later reads are plain attribute reads.
    """

    def __init__(self, compute: Callable[[Any], T]) -> None:
        self._compute = compute
        self._name = compute.__name__
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> once[T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...

    def __get__(self, obj: object | None,
                owner: type | None = None) -> T | once[T]:
        if obj is None:
            return self
        value = self._compute(obj)
        obj.__dict__[self._name] = value
        return value


class kept(Generic[T]):  # noqa: N801 (read like once)
    """A value the once-attribute ``group`` computes with its own.

    One decoding step yields several values (the extension pass, the
    names, the key): the first read of any of them runs the step, which
    writes them all into the instance ``__dict__``, where later reads
    find them. The first read runs the step's function itself, as the
    step's own first read would (this one is then never asked again):
    two calls less than a :class:`once` that reads the step.
    """

    def __init__(self, group: str, doc: str) -> None:
        self._group = group
        self._name = ""
        self._owner: type = object
        self._step: Callable[[Any], Any] | None = None
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name
        self._owner = owner

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> kept[T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...

    def __get__(self, obj: object | None,
                owner: type | None = None) -> T | kept[T]:
        if obj is None:
            return self
        step = self._step
        if step is None:  # first use: the step is a once of the class
            step = self._step = vars(self._owner)[self._group]._compute
        fields = obj.__dict__
        fields[self._group] = step(obj)
        return fields[self._name]  # type: ignore[no-any-return]


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


@deferred.dataclass(frozen=True, eq=False)
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

    @once
    def rdns(self) -> tuple[tuple[tuple[str, str], ...], ...]:
        return tuple(
            tuple((a.oid.dotted_string, str(a.value)) for a in rdn)
            for rdn in self._name().rdns)

    @once
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
_POLICY_CONSTRAINTS, _INHIBIT_ANY = MUST_BE_CRITICAL

_SAN, _KU, _EKU, _BC, _NC = ("2.5.29.17", "2.5.29.15", "2.5.29.37",
                             "2.5.29.19", "2.5.29.30")
_SKI, _AKI, _TLS_FEATURE = "2.5.29.14", "2.5.29.35", "1.3.6.1.5.5.7.1.24"
_SCT = "1.3.6.1.4.1.11129.2.4.2"


#: ObjectIdentifier -> dotted text, for the extension OIDs met (pyca
#: builds a new string on every read of ``dotted_string``). Bounded:
#: the OIDs come from peers' certificates.
_DOTTED: dict[x509.ObjectIdentifier, str] = {}
_DOTTED_MAX = 256


def _dotted(oid: x509.ObjectIdentifier) -> str:
    text = _DOTTED.get(oid)
    if text is None:
        text = oid.dotted_string
        if len(_DOTTED) < _DOTTED_MAX:
            _DOTTED[oid] = text
    return text


#: Extension value class -> dotted OID of the extensions cryptography
#: decodes to that class (each such class names its OID), so a decoded
#: extension is filed by its value's class: reading the class costs less
#: than hashing a new ObjectIdentifier. Filled on first sight of a
#: class; undecoded (UnrecognizedExtension) values are filed by OID.
_OID_OF_CLASS: dict[type, str] = {}


def _extension_key(ext: x509.Extension[Any]) -> str:
    """``ext``'s dotted OID, learning its value's class on the way."""
    oid = ext.oid
    text = _dotted(oid)
    kind = type(ext.value)
    if kind is not x509.UnrecognizedExtension and (
            getattr(kind, "oid", None) == oid):
        _OID_OF_CLASS[kind] = text
    return text


def _must_be_critical_loose(found: dict[str, x509.Extension[Any]]
                            ) -> tuple[str, ...]:
    """The :data:`MUST_BE_CRITICAL` extensions in ``found`` that are
    not marked critical."""
    if _POLICY_CONSTRAINTS not in found and _INHIBIT_ANY not in found:
        return ()
    return tuple(oid for oid in MUST_BE_CRITICAL
                 if oid in found and not found[oid].critical)


@deferred.dataclass(frozen=True)
class GeneralNameValue:
    """One GeneralName; ``kind`` is the schema union member name."""

    kind: str
    value: NameValue


@deferred.dataclass(frozen=True)
class SctValue:
    """An embedded SCT (RFC 6962 section 3.3)."""

    log_id: bytes
    timestamp_ms: int
    extensions: bytes
    signature: bytes
    hash_algorithm: str
    signature_algorithm: str


@dataclasses.dataclass(frozen=True, eq=False, init=False)
class ParsedCertificate:
    """Everything the platform reads from one certificate.

    :func:`parse_certificate` parses the DER; the extensions, the key
    and the values below are decoded on first read and kept (a
    malformed extension or key raises :class:`CertificateParseError`
    there, as parsing did). Equal when the DER is.
    """

    der: bytes
    cert: x509.Certificate = dataclasses.field(repr=False)

    def __init__(self, der: bytes, cert: x509.Certificate) -> None:
        # The fields go straight into the instance dict: the generated
        # frozen __init__ sets each through object.__setattr__ (a
        # fifth of what a parse costs beyond cryptography's own).
        fields = self.__dict__
        fields["der"] = der
        fields["cert"] = cert

    @once
    def serial_number(self) -> int:
        """The serial; :func:`parse_certificate` reads a non-positive
        one there, where cryptography's deprecation warning (on every
        read of it) is contained, and a positive one waits for a read.
        """
        return self.cert.serial_number

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParsedCertificate) and other.der == self.der

    def __hash__(self) -> int:
        return hash(self.der)

    @once
    def extensions(self) -> dict[str, x509.Extension[Any]]:
        """Every extension by dotted OID, decoded on first read.

        The values the checks of every certificate on a path read
        (:attr:`ekus`, :attr:`is_ca`, :attr:`ski`, :attr:`aki_key_id`,
        :attr:`noncritical_must_be_critical`) are kept in the same
        pass: one step instead of one lazy read each.
        """
        key_of = _OID_OF_CLASS.get
        found: dict[str, x509.Extension[Any]] = {}
        ekus: tuple[str, ...] = ()
        is_ca = False
        ski = aki_key_id = None
        try:
            for ext in self.cert.extensions:
                value = ext.value
                # By exact class: cryptography builds each value as the
                # class of its OID, and an isinstance that fails on these
                # ABCs is a slow call.
                kind = type(value)
                found[key_of(kind) or _extension_key(ext)] = ext
                if kind is x509.BasicConstraints:
                    is_ca = bool(value.ca)
                elif kind is x509.SubjectKeyIdentifier:
                    ski = value.digest
                elif kind is x509.AuthorityKeyIdentifier:
                    aki_key_id = value.key_identifier
                elif kind is x509.ExtendedKeyUsage:
                    dotted = _DOTTED.get
                    ekus = tuple([dotted(o) or _dotted(o) for o in value])
        except (ValueError, TypeError, x509.DuplicateExtension,
                x509.UnsupportedGeneralNameType) as err:
            raise _malformed(err) from err
        fields = self.__dict__
        fields["ekus"], fields["is_ca"] = ekus, is_ca
        fields["ski"], fields["aki_key_id"] = ski, aki_key_id
        fields["noncritical_must_be_critical"] = _must_be_critical_loose(
            found)
        return found

    @once
    def public_key(self) -> Any:
        """The subject public key, decoded on first read (with its
        :attr:`algorithm`, which every check of the key reads)."""
        try:
            key = self.cert.public_key()
        except (ValueError, TypeError, UnsupportedAlgorithm) as err:
            raise _malformed(err) from err
        self.__dict__["algorithm"] = key_algorithm(key)
        return key

    def decode(self) -> None:
        """Decode the extensions and the key now.

        :raises CertificateParseError: one of them is malformed.
        """
        _ = self.extensions, self.public_key

    @once
    def names(self) -> tuple[bytes, bytes]:
        """(issuer DER, subject DER), cut from the certificate DER
        (:attr:`issuer_der`, :attr:`subject_der` and
        :attr:`is_self_issued` are kept with them: path checks read
        them together; :attr:`subject` and :attr:`issuer` are built on
        their first read, which the path checks do not make)."""
        issuer, subject = found = cert_names(self.der)
        self.__dict__.update(issuer_der=issuer, subject_der=subject,
                             is_self_issued=issuer == subject)
        return found

    issuer_der = kept[bytes](
        "names", "The issuer Name as encoded (RFC 5280 section 4.1.2.4).")
    subject_der = kept[bytes](
        "names", "The subject Name as encoded (RFC 5280 section 4.1.2.6).")
    is_self_issued = kept[bool](
        "names", "Issuer and subject Names are the same encoding.")

    def _value(self, oid: str) -> Any:
        ext = self.extensions.get(oid)
        return None if ext is None else ext.value

    @once
    def subject(self) -> DistinguishedNameValue:
        # The name's source reads the cryptography certificate, never
        # self: a closure over self would make every read certificate a
        # reference cycle, left for the cyclic collector when dropped.
        cert = self.cert
        return DistinguishedNameValue(self.subject_der, lambda: cert.subject)

    @once
    def issuer(self) -> DistinguishedNameValue:
        cert = self.cert
        return DistinguishedNameValue(self.issuer_der, lambda: cert.issuer)

    @once
    def serial(self) -> bytes:
        number = self.serial_number
        return number.to_bytes((number.bit_length() + 8) // 8, "big",
                               signed=True)

    @once
    def not_before(self) -> dt.datetime:
        # The two edges are read together: one step keeps both.
        self.__dict__["not_after"] = self.cert.not_valid_after_utc
        return self.cert.not_valid_before_utc

    @once
    def not_after(self) -> dt.datetime:
        self.__dict__["not_before"] = self.cert.not_valid_before_utc
        return self.cert.not_valid_after_utc

    @once
    def sans(self) -> tuple[GeneralNameValue, ...]:
        san = self._value(_SAN)
        return tuple(_general_name(g) for g in san) if san else ()

    @once
    def san_values(self) -> tuple[frozenset[str], frozenset[bytes]]:
        """(:attr:`dns_sans`, :attr:`ip_sans`), kept in one pass over
        the SAN with :attr:`has_wildcard_dns_san` (the name checks
        read them together)."""
        dns: list[str] = []
        ips: list[bytes] = []
        wildcard = False
        for name in self._value(_SAN) or ():
            # The exact classes cryptography decodes to (an isinstance
            # that fails on these ABCs is a slow call).
            kind = type(name)
            if kind is x509.DNSName:
                value = name.value
                dns.append(value)
                wildcard = wildcard or value.startswith("*")
            elif kind is x509.IPAddress:
                ips.append(_packed(name.value))
        found = frozenset(dns), frozenset(ips)
        fields = self.__dict__
        fields["dns_sans"], fields["ip_sans"] = found
        fields["has_wildcard_dns_san"] = wildcard
        return found

    dns_sans = kept[frozenset[str]](
        "san_values", "The dNSName SAN values, as written.")
    ip_sans = kept[frozenset[bytes]](
        "san_values", "The iPAddress SAN values, packed.")
    has_wildcard_dns_san = kept[bool](
        "san_values", "A dNSName SAN starts with a wildcard label.")

    @once
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

    ekus = kept[tuple[str, ...]](
        "extensions",
        "The ExtendedKeyUsage purposes by dotted OID, () without.")
    is_ca = kept[bool](
        "extensions", "BasicConstraints cA (False without the extension).")

    @once
    def path_len(self) -> int:
        bc = self._value(_BC)
        if isinstance(bc, x509.BasicConstraints) and (
                bc.path_length is not None):
            return bc.path_length
        return -1

    @once
    def permitted(self) -> tuple[GeneralNameValue, ...]:
        nc = self._value(_NC)
        if not isinstance(nc, x509.NameConstraints):
            return ()
        return tuple(_general_name(g) for g in nc.permitted_subtrees or ())

    @once
    def excluded(self) -> tuple[GeneralNameValue, ...]:
        nc = self._value(_NC)
        if not isinstance(nc, x509.NameConstraints):
            return ()
        return tuple(_general_name(g) for g in nc.excluded_subtrees or ())

    @property
    def has_name_constraints(self) -> bool:
        return _NC in self.extensions

    @once
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

    @once
    def has_must_staple(self) -> bool:
        feature = self._value(_TLS_FEATURE)
        return bool(feature is not None
                    and x509.TLSFeatureType.status_request in feature)

    algorithm = kept[str](
        "public_key", "The key's schema AsymmetricAlgorithm name, or \"\" "
        "outside the schema (:func:`key_algorithm`).")

    @once
    def signature_scheme(self) -> str:
        return signature_scheme(self.cert)

    @once
    def spki_der(self) -> bytes:
        return self.public_key.public_bytes(  # type: ignore[no-any-return]
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo)

    @once
    def sha256(self) -> bytes:
        """SHA-256 of the DER: ``cert.fingerprint(SHA256())``, which
        re-encodes the certificate first (parse_certificate refuses DER
        with anything after the certificate, so the bytes are the same);
        hashing them directly costs a fifth of that, and the trust
        service takes one per root at boot."""
        return hashlib.sha256(self.der).digest()

    @once
    def serial_positive(self) -> bool:
        """RFC 5280 section 4.1.2.2 wants a positive serial; relying
        parties should cope with others, so parsing records this
        instead of failing and policy decides (field report 5)."""
        return self.serial_number > 0

    ski = kept[bytes | None](
        "extensions",
        "SubjectKeyIdentifier (RFC 5280 section 4.2.1.2), or None.")

    @property
    def has_aki(self) -> bool:
        return _AKI in self.extensions

    aki_key_id = kept[bytes | None](
        "extensions",
        "The AuthorityKeyIdentifier's keyIdentifier (4.2.1.1), or None.")

    @once
    def aki_names_issuer(self) -> bool:
        """The AKI names the issuer by DN and serial."""
        value = self._value(_AKI)
        return isinstance(value, x509.AuthorityKeyIdentifier) and (
            value.authority_cert_issuer is not None
            or value.authority_cert_serial_number is not None)

    @once
    def common_names(self) -> tuple[str, ...]:
        """The subject's commonName values, in order (BR 7.1.4.3)."""
        return tuple(str(a.value) for a in
                     self.cert.subject.get_attributes_for_oid(
                         x509.NameOID.COMMON_NAME))

    noncritical_must_be_critical = kept[tuple[str, ...]](
        "extensions",
        "Extensions RFC 5280 says conforming CAs MUST mark critical "
        "(policyConstraints 4.2.1.11, inhibitAnyPolicy 4.2.1.14) that this "
        "certificate carries non-critical, by dotted OID.")

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
    if first == 0x82:  # most names and certificates: two octets
        return at + 4, at + 4 + (data[at + 2] << 8 | data[at + 3])
    count = first & 0x7F
    length = int.from_bytes(data[at + 2:at + 2 + count], "big")
    return at + 2 + count, at + 2 + count + length


def cert_names(der: bytes) -> tuple[bytes, bytes]:
    """(issuer DER, subject DER) as encoded in a Certificate's DER.

    RFC 5280 section 4.1: Certificate is a SEQUENCE whose first element
    is the TBSCertificate: version [0] (optional), serialNumber,
    signature, issuer, validity, subject. Only called on DER that
    cryptography has parsed, so the structure is known to be there
    (and cryptography would re-encode the whole TBSCertificate to hand
    it out).
    """
    tbs, _end = _tlv_end(der, 0)
    at, _end = _tlv_end(der, tbs)
    if der[at] == 0xA0:
        at = _tlv_end(der, at)[1]
    for _ in range(2):  # serialNumber, signature
        at = _tlv_end(der, at)[1]
    issuer_end = _tlv_end(der, at)[1]
    issuer = der[at:issuer_end]
    at = _tlv_end(der, issuer_end)[1]  # validity
    return issuer, der[at:_tlv_end(der, at)[1]]


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


_RSA_SIZES = {2048: "rsa2048", 3072: "rsa3072", 4096: "rsa4096"}
_EC_CURVES = {"secp256r1": "ecdsaP256", "secp384r1": "ecdsaP384",
              "secp521r1": "ecdsaP521"}

#: Key class -> its family, filled on first sight of a class: the
#: families are ABCs, whose isinstance check is slow when it fails.
_KEY_FAMILIES: dict[type, str] = {}


def _key_family(key: object) -> str:
    kind = type(key)
    family = _KEY_FAMILIES.get(kind)
    if family is None:
        family = ("rsa" if isinstance(key, rsa.RSAPublicKey)
                  else "ec" if isinstance(key, ec.EllipticCurvePublicKey)
                  else "ed25519" if isinstance(key,
                                               ed25519.Ed25519PublicKey)
                  else "ed448" if isinstance(key, ed448.Ed448PublicKey)
                  else "")
        _KEY_FAMILIES[kind] = family
    return family


def key_algorithm(key: object) -> str:
    """Schema AsymmetricAlgorithm name, or "" if outside the schema."""
    family = _key_family(key)
    if family == "rsa":
        return _RSA_SIZES.get(key.key_size, "")  # type: ignore[attr-defined]
    if family == "ec":
        return _EC_CURVES.get(key.curve.name,  # type: ignore[attr-defined]
                              "")
    return family


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


#: :data:`_SIG_SCHEMES` by ObjectIdentifier: looking one up hashes the
#: OID, where spelling it out (``dotted_string``) builds a new string.
_SIG_SCHEMES_BY_OID = {x509.ObjectIdentifier(oid): name
                       for oid, name in _SIG_SCHEMES.items()}
_RSASSA_PSS = x509.ObjectIdentifier("1.2.840.113549.1.1.10")


def signature_scheme(cert: x509.Certificate) -> str:
    """Schema SignatureScheme name of the issuer's signature, or ""."""
    oid = cert.signature_algorithm_oid
    if oid == _RSASSA_PSS:
        h = cert.signature_hash_algorithm
        return _PSS.get(h.name if h else "", "")
    return _SIG_SCHEMES_BY_OID.get(oid, "")


def _malformed(err: Exception) -> CertificateParseError:
    return CertificateParseError(f"malformed certificate: {str(err)[:120]}")


def parse_certificate(der: bytes) -> ParsedCertificate:
    """Parse the DER structure (extensions and key wait for a read).

    :raises CertificateParseError: malformed DER (reason
        ``policyViolation``); a malformed extension or key raises it
        on first read (:meth:`ParsedCertificate.decode`).
    """
    try:
        if _serial_looks_positive(der):
            parsed = ParsedCertificate(der,
                                       x509.load_der_x509_certificate(der))
            # cryptography refuses a non-minimal INTEGER, so what the
            # peek read is the serial's sign: no read of the number.
            parsed.__dict__["serial_positive"] = True
            return parsed
        # cryptography warns (and will one day refuse) on a non-positive
        # serial; the warning must not escape when warnings are errors.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            cert = x509.load_der_x509_certificate(der)
            serial = cert.serial_number
    except (ValueError, TypeError) as err:
        raise _malformed(err) from err
    parsed = ParsedCertificate(der, cert)
    object.__setattr__(parsed, "serial_number", serial)
    return parsed


def _serial_looks_positive(der: bytes) -> bool:
    """True when ``der`` holds a positive serialNumber (X.690 8.3).

    Unparsed input: any doubt is False, which only means parsing
    contains cryptography's deprecation warning (catching warnings
    costs as much as the parse).
    """
    try:
        # The contents of the Certificate and TBSCertificate SEQUENCEs
        # (one length octet, or 0x8n and n more), then version [0].
        head = der[1]
        at = 2 if head < 0x80 else 2 + (head & 0x7F)
        head = der[at + 1]
        at += 2 if head < 0x80 else 2 + (head & 0x7F)
        if der[at] == 0xA0:
            at = _tlv_end(der, at)[1]
        if der[at] != 0x02:  # INTEGER
            return False
        size, first = der[at + 1], der[at + 2]
    except IndexError:
        return False
    # A long-form length (a serial of 128 octets or more) is a doubt.
    return 0 < size < 0x80 and first < 0x80 and (first != 0 or size > 1)


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
