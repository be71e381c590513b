"""The verifier's revocation decision: is this leaf's revocation
evidence enough (DESIGN.md section 6; RFC 6960, RFC 7633, RFC 5280
section 6.3)?

Pure: values and ``now`` in, a :class:`RevocationEvidence` out, or a
:class:`~services.ocsp.errors.RevocationError` whose ``reason`` is one
of the schema's ``revoked``, ``ocspUnavailable`` or
``mustStapleMissing`` and whose ``problem`` says exactly why.

Rules, in order:

1. Any evidence that checks and says *revoked* (a stapled or fetched
   OCSP response, or a usable CRL listing the serial) fails with
   ``revoked``, carrying the revocation time and reason.
2. A must-staple leaf (RFC 7633), or any leaf under
   ``stapling_required``, needs a stapled response that checks and says
   *good*: none is ``mustStapleMissing``; an unusable one (stale, for
   another serial, badly signed) or an *unknown* one is
   ``ocspUnavailable`` with its problem (field report 12e).
3. Otherwise the chain passes with a good OCSP response, a fresh usable
   CRL (when ``crl_allowed``) that does not list the serial, or as a
   short-lived certificate (validity at most ``short_lived``, 10 days).
   A CRL that is unusable (field report 13) is never evidence of good.
4. With none of these, ``require_ocsp`` fails with ``ocspUnavailable``;
   without it the check soft-fails and says so in the result's note.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509

from services._runtime import deferred
from services.crl.errors import CrlError
from services.crl.policy import check_crl, lookup
from services.ocsp.errors import Problem, Reason, RevocationError, ServiceError
from services.ocsp.model import CheckedResponse, is_must_staple
from services.ocsp.policy import check_response

SHORT_LIVED = dt.timedelta(days=10)


@deferred.dataclass(frozen=True)
class RevocationPolicy:
    """The revocation part of a verification policy.

    :param require_ocsp: no evidence is a failure, not a soft-fail.
    :param stapling_required: every leaf must come with a staple.
    :param short_lived: a leaf valid this long or less needs no evidence.
    :param crl_allowed: a fresh CRL counts as evidence.
    :param skew: tolerance on OCSP and CRL times.
    :param allow_sha1: ``ocsp_crl_allow_sha1`` (field report 6c).
    """

    require_ocsp: bool = False
    stapling_required: bool = False
    short_lived: dt.timedelta = SHORT_LIVED
    crl_allowed: bool = True
    skew: dt.timedelta = dt.timedelta(seconds=300)
    allow_sha1: bool = True


@deferred.dataclass(frozen=True)
class RevocationEvidence:
    """Why revocation passed, or that it soft-failed.

    :param outcome: ``good`` or ``softFail``.
    :param source: ``ocspStaple``, ``ocsp``, ``crl``, ``shortLived`` or
        ``none``.
    :param ocsp_status: the schema ``OcspStatus`` for ``ValidChain``.
    :param notes: what was seen and not used, for the outcome's detail.
    """

    outcome: str
    source: str
    ocsp_status: str
    notes: tuple[str, ...] = ()
    response: CheckedResponse | None = None

    @property
    def note(self) -> str:
        return "; ".join(self.notes)


def _revoked(source: str, when: dt.datetime | None, reason: str,
             serial: int) -> RevocationError:
    stamp = when.isoformat() if when else "unknown time"
    return RevocationError(Problem.revoked,
                           f"{source}: revoked at {stamp} ({reason})",
                           serial=serial, revocation_time=when,
                           revocation_reason=reason, source=source)


def check_revocation(leaf: x509.Certificate, issuer: x509.Certificate,
                     now: dt.datetime, policy: RevocationPolicy, *,
                     staple: bytes | None = None,
                     fetched: bytes | None = None,
                     crl: bytes | None = None) -> RevocationEvidence:
    """Decide revocation for ``leaf`` (issued by ``issuer``) at ``now``.

    :param staple: the OCSP response stapled in the handshake (DER).
    :param fetched: an OCSP response the verifier fetched itself.
    :param crl: the issuer's CRL (DER).
    :raises RevocationError: ``revoked`` (context ``revocation_time``,
        ``revocation_reason``), ``mustStapleMissing`` or
        ``ocspUnavailable``.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    must_staple = is_must_staple(leaf)
    must = must_staple or policy.stapling_required
    why = "must-staple" if must_staple else "stapling required"
    notes: list[str] = []
    good: tuple[str, CheckedResponse] | None = None
    unknown = False
    for source, der in (("ocspStaple", staple), ("ocsp", fetched)):
        if der is None:
            continue
        try:
            checked = check_response(der, leaf, issuer, now,
                                     skew=policy.skew,
                                     allow_sha1=policy.allow_sha1)
        except ServiceError as err:
            if source == "ocspStaple" and must:
                raise RevocationError(
                    err.problem, f"{why}: stapled response unusable: "
                    f"{err.detail}", reason=Reason.ocspUnavailable,
                    **err.context) from err
            notes.append(f"{source} unusable: {err.detail}")
            continue
        notes.extend(f"{source}: {w}" for w in checked.warnings)
        if checked.status == "revoked":
            raise _revoked(source, checked.revocation_time,
                           checked.revocation_reason, leaf.serial_number)
        if checked.status == "good":
            good = good or (source, checked)
            continue
        unknown = True
        if source == "ocspStaple" and must:
            raise RevocationError(
                Problem.statusUnknown,
                f"{why}: stapled response says unknown",
                reason=Reason.ocspUnavailable)
        notes.append(f"{source} says unknown")
    if must and (good is None or good[0] != "ocspStaple"):
        raise RevocationError(Problem.mustStapleMissing,
                              f"{why}: no stapled OCSP response",
                              serial=leaf.serial_number)
    crl_good = False
    if crl is not None and policy.crl_allowed:
        try:
            entry = lookup(check_crl(crl, issuer, now, skew=policy.skew,
                                     allow_sha1=policy.allow_sha1), leaf)
        except CrlError as err:
            notes.append(f"crl unusable: {err.detail}")
        else:
            if entry is not None:
                raise _revoked("crl", entry.revoked_at, entry.reason,
                               leaf.serial_number)
            crl_good = True
    elif crl is not None:
        notes.append("crl ignored: policy does not allow CRLs")
    ocsp_status = "good" if good else ("unknown" if unknown
                                       else "stapledAbsent")
    if good is not None:
        return RevocationEvidence("good", good[0], "good", tuple(notes),
                                  good[1])
    if crl_good:
        return RevocationEvidence("good", "crl", ocsp_status, tuple(notes))
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    if lifetime <= policy.short_lived:
        return RevocationEvidence("good", "shortLived", ocsp_status,
                                  tuple(notes))
    if policy.require_ocsp:
        detail = "; ".join(notes) or "no OCSP response and no usable CRL"
        raise RevocationError(Problem.noEvidence,
                              f"requireOcsp: {detail}",
                              reason=Reason.ocspUnavailable)
    notes.append("soft-fail: no revocation evidence; requireOcsp is off")
    return RevocationEvidence("softFail", "none", ocsp_status, tuple(notes))
