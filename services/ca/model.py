"""The private CA's values: issuance policy, requests, records, config.

RFC 5280 section 4.2.1.10 shapes the name subtrees (``dNSName`` and
``iPAddress`` bases only; other name forms are refused, never ignored),
section 5.3.1 the revocation reasons. A PKCS#10 request (RFC 2986) is
parsed once by :func:`parse_request` into a :class:`ParsedRequest`; the
pure policy reads only that.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from services._runtime import deferred

#: The subtree and SAN forms the CA understands.
SubjectName = x509.DNSName | x509.IPAddress



@dataclasses.dataclass(frozen=True)
class IssuancePolicy:
    """What one CertificateAuthority capability may issue.

    :param permitted: name subtrees every SAN must fall in; empty means
        any name (the root policy of a private CA).
    :param excluded: subtrees no SAN may touch.
    :param max_lifetime_seconds: the longest validity it may grant.
    :param key_types: schema ``AsymmetricAlgorithm`` names it accepts.
    :param must_staple: every certificate carries TLS feature
        ``status_request`` (RFC 7633).
    """

    permitted: tuple[SubjectName, ...] = ()
    excluded: tuple[SubjectName, ...] = ()
    max_lifetime_seconds: int = 90 * 86400
    key_types: tuple[str, ...] = ("ecdsaP256", "ecdsaP384", "rsa2048",
                                  "rsa3072", "rsa4096", "ed25519")
    must_staple: bool = False

    def __post_init__(self) -> None:
        if self.max_lifetime_seconds <= 0:
            raise ValueError("max_lifetime_seconds must be positive")
        for gn in (*self.permitted, *self.excluded):
            if not isinstance(gn, (x509.DNSName, x509.IPAddress)):
                raise ValueError(f"unsupported subtree {gn!r}")


@deferred.dataclass(frozen=True)
class Narrowing:
    """What a holder asks ``narrow`` for; zero or empty keeps the
    wider policy's value (the schema's defaults)."""

    permitted: tuple[SubjectName, ...] = ()
    excluded: tuple[SubjectName, ...] = ()
    max_lifetime_seconds: int = 0
    key_types: tuple[str, ...] = ()
    must_staple: bool = False


@deferred.dataclass(frozen=True)
class ParsedRequest:
    """An issuance request, parsed.

    :param sans: the names asked for (the request's own list, or the
        CSR's SAN extension when the request names none).
    :param unsupported_names: SAN forms outside :data:`SubjectName`,
        kept so policy can refuse them by name.
    :param lifetime_seconds: 0 asks for the policy's maximum.
    :param purposes: schema ``CertPurpose`` names; empty means
        ``tlsServerAuth``.
    """

    csr: x509.CertificateSigningRequest
    key_type: str
    signature_valid: bool
    sans: tuple[SubjectName, ...]
    unsupported_names: tuple[str, ...]
    lifetime_seconds: int
    purposes: tuple[str, ...]


@deferred.dataclass(frozen=True)
class Admitted:
    """A request the policy admitted: exactly what will be signed."""

    public_key: object
    sans: tuple[SubjectName, ...]
    lifetime: dt.timedelta
    ekus: tuple[x509.ObjectIdentifier, ...]
    must_staple: bool


@deferred.dataclass(frozen=True)
class IssuedRecord:
    """One row of the issuance database."""

    serial: int
    der: bytes
    sha256: bytes
    not_before: dt.datetime
    not_after: dt.datetime
    sans: tuple[str, ...]
    revoked_at: dt.datetime | None = None
    reason: str = "unspecified"

    @property
    def serial_bytes(self) -> bytes:
        """Big-endian two's complement, as ``Certificate.serial``."""
        return self.serial.to_bytes((self.serial.bit_length() + 8) // 8,
                                    "big", signed=True)

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


@dataclasses.dataclass(frozen=True)
class CAConfig:
    """Configuration of one private CA.

    :param ocsp_url: written into every certificate's AIA (RFC 5280
        4.2.2.1) and served by the project's own responder.
    :param crl_url: the CRL distribution point (RFC 5280 4.2.1.13).
    :param skew_seconds: notBefore is backdated by this much (field
        report 8f), so relying parties with a slow clock accept it.
    """

    name: str = "capOS Private CA"
    ocsp_url: str = "http://127.0.0.1:8080/ocsp"
    crl_url: str = "http://127.0.0.1:8080/crl"
    skew_seconds: int = 300
    root_lifetime_days: int = 3650
    responder_lifetime_days: int = 30
    crl_validity_seconds: int = 86400
    key_type: str = "ecdsaP256"


def key_type(key: object) -> str:
    """Schema AsymmetricAlgorithm name of a public key, or a label
    outside the schema (``rsa1024``) that no policy lists."""
    if isinstance(key, rsa.RSAPublicKey):
        return f"rsa{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "ecdsaP256", "secp384r1": "ecdsaP384",
                "secp521r1": "ecdsaP521"}.get(key.curve.name,
                                             f"ec-{key.curve.name}")
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "ed448"
    return type(key).__name__


def name_text(gn: x509.GeneralName) -> str:
    """A SAN as text: ``dns:example.com``, ``ip:192.0.2.1``."""
    if isinstance(gn, x509.DNSName):
        return f"dns:{gn.value}"
    if isinstance(gn, x509.IPAddress):
        return f"ip:{gn.value}"
    return f"{type(gn).__name__}:{gn.value}"


def parse_request(csr_der: bytes, sans: tuple[x509.GeneralName, ...],
                  lifetime_seconds: int,
                  purposes: tuple[str, ...]) -> ParsedRequest:
    """Parse an issuance request.

    :raises ValueError: the CSR is not DER PKCS#10.
    """
    csr = x509.load_der_x509_csr(csr_der)
    if not sans:
        try:
            ext = csr.extensions.get_extension_for_class(
                x509.SubjectAlternativeName)
            sans = tuple(ext.value)
        except x509.ExtensionNotFound:
            sans = ()
    good = tuple(g for g in sans
                 if isinstance(g, (x509.DNSName, x509.IPAddress)))
    bad = tuple(name_text(g) for g in sans
                if not isinstance(g, (x509.DNSName, x509.IPAddress)))
    return ParsedRequest(
        csr=csr, key_type=key_type(csr.public_key()),
        signature_valid=csr.is_signature_valid, sans=good,
        unsupported_names=bad, lifetime_seconds=lifetime_seconds,
        purposes=purposes)


def ip_subtree(text: str) -> x509.IPAddress:
    """An ``iPAddress`` subtree from ``192.0.2.0/24`` notation."""
    return x509.IPAddress(ipaddress.ip_network(text))
