"""Errors of the OCSP service: a schema ``Reason`` and a finer
``Problem``.

``Reason`` members are a subset of the schema ``FailureReason``,
matched by name. The schema has no member for a stale or mismatched
response, so :class:`Problem` names what was wrong (the names field
reports 12 and 13 use) and :data:`PROBLEM_REASON` is the one table that
maps each problem to a schema reason. Tests assert on both.
"""

from __future__ import annotations

import enum
from typing import Any

from services._runtime.errors import ReasonedError


class Reason(enum.Enum):
    """Schema FailureReason members the revocation services use."""

    revoked = "revoked"
    ocspUnavailable = "ocspUnavailable"
    mustStapleMissing = "mustStapleMissing"
    weakAlgorithm = "weakAlgorithm"
    signatureMismatch = "signatureMismatch"
    badEku = "badEku"
    policyViolation = "policyViolation"
    expired = "expired"


class Problem(enum.Enum):
    """What exactly was wrong with revocation evidence."""

    unreachable = "unreachable"              # transport failed
    noResponderUrl = "noResponderUrl"        # no AIA OCSP URL
    malformed = "malformed"                  # not an OCSPResponse
    unsuccessful = "unsuccessful"            # responseStatus != 0
    ocspMismatch = "ocspMismatch"            # no response for this CertID
    ocspStale = "ocspStale"                  # past nextUpdate
    ocspNotYetValid = "ocspNotYetValid"      # thisUpdate in the future
    ocspNoNextUpdate = "ocspNoNextUpdate"    # nextUpdate absent
    badSignature = "badSignature"
    unauthorizedResponder = "unauthorizedResponder"
    responderNotOcspSigning = "responderNotOcspSigning"
    responderExpired = "responderExpired"
    sha1Signature = "sha1Signature"          # refused by the SHA-1 setting
    unsupportedAlgorithm = "unsupportedAlgorithm"
    statusUnknown = "statusUnknown"
    revoked = "revoked"
    mustStapleMissing = "mustStapleMissing"
    noEvidence = "noEvidence"
    crlUnusable = "crlUnusable"


#: Each problem's schema reason.
PROBLEM_REASON: dict[Problem, Reason] = {
    Problem.unreachable: Reason.ocspUnavailable,
    Problem.noResponderUrl: Reason.ocspUnavailable,
    Problem.malformed: Reason.ocspUnavailable,
    Problem.unsuccessful: Reason.ocspUnavailable,
    Problem.ocspMismatch: Reason.ocspUnavailable,
    Problem.ocspStale: Reason.ocspUnavailable,
    Problem.ocspNotYetValid: Reason.ocspUnavailable,
    Problem.ocspNoNextUpdate: Reason.ocspUnavailable,
    Problem.badSignature: Reason.signatureMismatch,
    Problem.unauthorizedResponder: Reason.signatureMismatch,
    Problem.responderNotOcspSigning: Reason.badEku,
    Problem.responderExpired: Reason.expired,
    Problem.sha1Signature: Reason.weakAlgorithm,
    Problem.unsupportedAlgorithm: Reason.weakAlgorithm,
    Problem.statusUnknown: Reason.ocspUnavailable,
    Problem.revoked: Reason.revoked,
    Problem.mustStapleMissing: Reason.mustStapleMissing,
    Problem.noEvidence: Reason.ocspUnavailable,
    Problem.crlUnusable: Reason.ocspUnavailable,
}


class ServiceError(ReasonedError):
    """Root error: a problem, its schema reason, a detail (led by the
    problem's name) and context."""

    reason: Reason

    def __init__(self, problem: Problem, detail: str,
                 reason: Reason | None = None, **context: Any) -> None:
        super().__init__(reason or PROBLEM_REASON[problem],
                         f"{problem.value}: {detail}", **context)
        self.problem = problem


class ResponseRejectedError(ServiceError):
    """A response was checked and is not usable (the check said no)."""


class ResponderError(ServiceError):
    """The responder broke the protocol (malformed, unsuccessful)."""


class UnavailableError(ServiceError):
    """The responder could not be reached (retryable)."""

    def __init__(self, detail: str, **context: Any) -> None:
        super().__init__(Problem.unreachable, detail, **context)


class RevocationError(ServiceError):
    """Revocation checking failed the chain (revoked, must-staple...)."""
