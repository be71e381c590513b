"""The pure CRL core (RFC 5280 sections 5 and 6.3).

Rules :func:`check_crl` keeps, in order:

1. The bytes are a v2 CRL whose issuer name is the issuer
   certificate's subject, and whose AKI, when both sides carry one,
   names the issuer's SKI (6.3.3 (f)).
2. If the issuer has a keyUsage extension it asserts cRLSign
   (6.3.3 (f)); otherwise ``crlIssuerNotAuthorized`` (field report
   13e). An issuer without keyUsage may sign CRLs (x509-limbo
   ``crl::issuer-no-keyusage-extension``).
3. Every critical extension, CRL-level or entry-level, is one this
   module processes as critical; any other makes the whole CRL unusable
   (5.2 and 5.3: "MUST reject the CRL", field report 13a and 13d). The
   only critical one accepted is IssuingDistributionPoint (13c), which
   5.2.5 requires to be critical. Extensions RFC 5280 requires to be
   non-critical (CRLNumber 5.2.3, AKI 4.2.1.1, reasonCode 5.3.1...)
   are refused when marked critical. A delta CRL indicator, an
   indirect CRL's certificateIssuer and an onlySomeReasons partition
   are not supported and so are refused, never half-used.
4. A CRLNumber is present (5.2.3: conforming issuers MUST include it).
5. The signature verifies under the issuer's key; a SHA-1 signature
   follows ``allow_sha1`` like OCSP (field report 6c).
6. thisUpdate <= now + skew, nextUpdate present and now - skew <=
   nextUpdate (5.1.2.5; this platform requires nextUpdate).

:func:`lookup` then answers for one certificate, after checking that
the CRL's scope (IssuingDistributionPoint, 6.3.3 (b)) covers it.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from services.crl.errors import CrlError, Problem
from services.crl.model import CheckedCrl, RevokedEntry, distribution_points

_SHA1 = {"1.2.840.113549.1.1.5", "1.2.840.10045.4.1", "1.2.840.10040.4.3"}

#: CRL extensions this module processes when critical (RFC 5280 5.2);
#: any other critical one makes the CRL unusable.
CRITICAL_OK_CRL = {
    "2.5.29.28",          # issuingDistributionPoint
}
#: Entry extensions processed when critical (RFC 5280 5.3): none.
#: reasonCode and invalidityDate are read when non-critical, as 5.3.1
#: and 5.3.2 require them to be.
CRITICAL_OK_ENTRY: set[str] = set()

_REASONS = {
    x509.ReasonFlags.unspecified: "unspecified",
    x509.ReasonFlags.key_compromise: "keyCompromise",
    x509.ReasonFlags.ca_compromise: "caCompromise",
    x509.ReasonFlags.affiliation_changed: "affiliationChanged",
    x509.ReasonFlags.superseded: "superseded",
    x509.ReasonFlags.cessation_of_operation: "cessationOfOperation",
    x509.ReasonFlags.certificate_hold: "certificateHold",
    x509.ReasonFlags.remove_from_crl: "removeFromCrl",
    x509.ReasonFlags.privilege_withdrawn: "privilegeWithdrawn",
    x509.ReasonFlags.aa_compromise: "aaCompromise",
}


def _ext(exts: x509.Extensions, kind: type) -> object | None:
    try:
        return exts.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _critical_check(exts: x509.Extensions, processed: set[str],
                    where: str) -> None:
    for ext in exts:
        if ext.critical and ext.oid.dotted_string not in processed:
            raise CrlError(Problem.crlUnsupportedCriticalExtension,
                           f"unsupported critical {where} extension "
                           f"{ext.oid.dotted_string}",
                           oid=ext.oid.dotted_string)


def _issuer_checks(crl: x509.CertificateRevocationList,
                   issuer: x509.Certificate) -> None:
    if crl.issuer != issuer.subject:
        raise CrlError(Problem.crlIssuerMismatch,
                       f"CRL issuer {crl.issuer.rfc4514_string()} is not "
                       f"{issuer.subject.rfc4514_string()}")
    aki = _ext(crl.extensions, x509.AuthorityKeyIdentifier)
    ski = _ext(issuer.extensions, x509.SubjectKeyIdentifier)
    if (isinstance(aki, x509.AuthorityKeyIdentifier)
            and aki.key_identifier is not None
            and isinstance(ski, x509.SubjectKeyIdentifier)
            and aki.key_identifier != ski.digest):
        raise CrlError(Problem.crlIssuerMismatch,
                       "CRL AKI does not name the issuer's key")
    ku = _ext(issuer.extensions, x509.KeyUsage)
    if isinstance(ku, x509.KeyUsage) and not ku.crl_sign:
        raise CrlError(Problem.crlIssuerNotAuthorized,
                       f"{issuer.subject.rfc4514_string()} keyUsage lacks "
                       "cRLSign")


def _signature_valid(crl: x509.CertificateRevocationList,
                     key: object) -> bool:
    # NOTE: ``is_signature_valid`` refuses SHA-1 outright (cryptography
    # 50), which would decide field report 6c's setting for us; verify
    # with the parsed algorithm and parameters instead.
    try:
        params = crl.signature_algorithm_parameters
        algorithm = crl.signature_hash_algorithm
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(crl.signature, crl.tbs_certlist_bytes,
                       params, algorithm)  # type: ignore[arg-type]
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(crl.signature, crl.tbs_certlist_bytes,
                       params)  # type: ignore[arg-type]
        elif isinstance(key, (ed25519.Ed25519PublicKey,
                              ed448.Ed448PublicKey)):
            key.verify(crl.signature, crl.tbs_certlist_bytes)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, TypeError, ValueError):
        return False
    return True


def check_crl(der: bytes, issuer: x509.Certificate, now: dt.datetime, *,
              skew: dt.timedelta = dt.timedelta(seconds=300),
              allow_sha1: bool = True) -> CheckedCrl:
    """Check one DER CRL against its issuer at ``now``.

    :raises CrlError: with a :class:`Problem`; the CRL must not be used.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    try:
        crl = x509.load_der_x509_crl(der)
        crl_exts = crl.extensions
    except ValueError as err:
        raise CrlError(Problem.crlMalformed, f"not a CRL: {err}") from err
    _issuer_checks(crl, issuer)
    _critical_check(crl_exts, CRITICAL_OK_CRL, "CRL")
    idp = _ext(crl_exts, x509.IssuingDistributionPoint)
    if isinstance(idp, x509.IssuingDistributionPoint):
        if idp.indirect_crl or idp.only_some_reasons is not None:
            raise CrlError(Problem.crlUnsupportedCriticalExtension,
                           "indirect or reason-partitioned CRLs are not "
                           "supported")
        if idp.only_contains_attribute_certs:
            raise CrlError(Problem.crlScopeMismatch,
                           "CRL covers attribute certificates only")
    number = _ext(crl_exts, x509.CRLNumber)
    if not isinstance(number, x509.CRLNumber):
        raise CrlError(Problem.crlNumberMissing, "CRL has no CRLNumber")
    entries: dict[int, RevokedEntry] = {}
    try:
        for revoked in crl:
            _critical_check(revoked.extensions, CRITICAL_OK_ENTRY, "entry")
            flag = _ext(revoked.extensions, x509.CRLReason)
            reason = (_REASONS[flag.reason] if isinstance(flag, x509.CRLReason)
                      else "unspecified")
            entries[revoked.serial_number] = RevokedEntry(
                revoked.serial_number, revoked.revocation_date_utc, reason)
    except ValueError as err:
        raise CrlError(Problem.crlMalformed,
                       f"unparseable entry: {err}") from err
    warnings: list[str] = []
    if crl.signature_algorithm_oid.dotted_string in _SHA1:
        if not allow_sha1:
            raise CrlError(Problem.crlSha1Signature,
                           "SHA-1 signed CRL and ocsp_crl_allow_sha1 is off")
        warnings.append("sha1-signed CRL accepted (ocsp_crl_allow_sha1)")
    if not _signature_valid(crl, issuer.public_key()):
        raise CrlError(Problem.crlBadSignature,
                       "signature does not verify under the issuer's key")
    this_update = crl.last_update_utc
    next_update = crl.next_update_utc
    if this_update > now + skew:
        raise CrlError(Problem.crlNotYetValid, "thisUpdate is in the future",
                       this_update=this_update, at=now)
    if next_update is None:
        raise CrlError(Problem.crlNoNextUpdate, "CRL has no nextUpdate")
    if next_update < now - skew:
        raise CrlError(Problem.crlStale,
                       f"nextUpdate {next_update.isoformat()} has passed",
                       next_update=next_update, at=now)
    points: tuple[str, ...] = ()
    only_user = only_ca = False
    if isinstance(idp, x509.IssuingDistributionPoint):
        points = tuple(n.value for n in (idp.full_name or ())
                       if isinstance(n, x509.UniformResourceIdentifier))
        only_user = idp.only_contains_user_certs
        only_ca = idp.only_contains_ca_certs
    return CheckedCrl(
        der=der, issuer_der=issuer.subject.public_bytes(),
        number=number.crl_number,
        this_update=this_update, next_update=next_update, entries=entries,
        distribution_points=points, only_user_certs=only_user,
        only_ca_certs=only_ca, warnings=tuple(warnings))


def _is_ca(cert: x509.Certificate) -> bool:
    bc = _ext(cert.extensions, x509.BasicConstraints)
    return isinstance(bc, x509.BasicConstraints) and bc.ca


def lookup(crl: CheckedCrl, cert: x509.Certificate) -> RevokedEntry | None:
    """``cert``'s entry in ``crl``, or None if it is not revoked.

    :raises CrlError: ``crlScopeMismatch`` when the CRL's
        IssuingDistributionPoint does not cover ``cert`` (6.3.3 (b)).
    """
    if cert.issuer.public_bytes() != crl.issuer_der:
        raise CrlError(Problem.crlIssuerMismatch,
                       "certificate and CRL have different issuers")
    if crl.only_user_certs and _is_ca(cert):
        raise CrlError(Problem.crlScopeMismatch,
                       "CRL covers end-entity certificates only")
    if crl.only_ca_certs and not _is_ca(cert):
        raise CrlError(Problem.crlScopeMismatch,
                       "CRL covers CA certificates only")
    if crl.distribution_points:
        mine = distribution_points(cert)
        if mine and not set(mine) & set(crl.distribution_points):
            raise CrlError(Problem.crlScopeMismatch,
                           "CRL distribution point is not the "
                           "certificate's")
    return crl.entries.get(cert.serial_number)


def crl_der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(Encoding.DER)
