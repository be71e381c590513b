"""A checked CRL (RFC 5280 section 5.1) as a frozen value."""

from __future__ import annotations

import datetime as dt

from cryptography import x509

from services._runtime import deferred


@deferred.dataclass(frozen=True)
class RevokedEntry:
    """One revokedCertificates entry; reason is a schema
    ``RevocationReason`` name."""

    serial: int
    revoked_at: dt.datetime
    reason: str = "unspecified"


@deferred.dataclass(frozen=True)
class CheckedCrl:
    """A CRL whose signature, issuer, freshness and extensions passed.

    :param distribution_points: the IssuingDistributionPoint fullName
        URIs, empty when the CRL has none (a full CRL for every cert).
    """

    der: bytes
    issuer_der: bytes
    number: int
    this_update: dt.datetime
    next_update: dt.datetime
    entries: dict[int, RevokedEntry]
    distribution_points: tuple[str, ...] = ()
    only_user_certs: bool = False
    only_ca_certs: bool = False
    warnings: tuple[str, ...] = ()


def distribution_points(cert: x509.Certificate) -> tuple[str, ...]:
    """The fullName URIs of a certificate's CRL distribution points."""
    try:
        cdp = cert.extensions.get_extension_for_class(
            x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(n.value for dp in cdp for n in (dp.full_name or ())
                 if isinstance(n, x509.UniformResourceIdentifier))
