"""OCSP values (RFC 6960 section 4.2.1): checked responses, statuses.

A response is checked once (:func:`services.ocsp.policy.check_response`)
into a :class:`CheckedResponse`; the stapler, the client capability and
the evidence check read only that. Status and reason names are the
schema's ``OcspStatus`` and ``RevocationReason`` enumerants.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID

from services._runtime import deferred

STATUS_NAMES = {
    ocsp.OCSPCertStatus.GOOD: "good",
    ocsp.OCSPCertStatus.REVOKED: "revoked",
    ocsp.OCSPCertStatus.UNKNOWN: "unknown",
}



@deferred.dataclass(frozen=True)
class CheckedResponse:
    """A response whose signature, signer, CertID and freshness passed.

    :param status: ``good``, ``revoked`` or ``unknown``.
    :param warnings: what was tolerated (a SHA-1 signature under
        ``allow_sha1``), for the audit record.
    """

    der: bytes
    status: str
    serial: int
    this_update: dt.datetime
    next_update: dt.datetime
    produced_at: dt.datetime
    revocation_time: dt.datetime | None = None
    revocation_reason: str = "unspecified"
    signer: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def validity(self) -> dt.timedelta:
        return self.next_update - self.this_update

    @property
    def refresh_at(self) -> dt.datetime:
        """Half-way through the validity (DESIGN.md section 6)."""
        return self.this_update + self.validity / 2


@deferred.dataclass(frozen=True)
class StatusAnswer:
    """What a responder's status source says about one serial."""

    status: str
    revocation_time: dt.datetime | None = None
    revocation_reason: str = "unspecified"


def responder_url(cert: x509.Certificate) -> str:
    """The first AIA OCSP URL (RFC 5280 4.2.2.1), or ``""``."""
    try:
        aia = cert.extensions.get_extension_for_class(
            x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return ""
    for desc in aia:
        if desc.access_method == AuthorityInformationAccessOID.OCSP and (
                isinstance(desc.access_location,
                           x509.UniformResourceIdentifier)):
            return desc.access_location.value
    return ""


def is_must_staple(cert: x509.Certificate) -> bool:
    """TLS feature status_request (RFC 7633 section 4)."""
    # By OID: most certificates have none, and the class lookup raises
    # (and formats) an ExtensionNotFound for each of them.
    for ext in cert.extensions:
        if ext.oid == ExtensionOID.TLS_FEATURE:
            return x509.TLSFeatureType.status_request in ext.value
    return False
