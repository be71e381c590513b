"""Errors of the CRL service: a schema ``Reason`` and a finer
``Problem`` (the names field report 13 uses), mapped in one table."""

from __future__ import annotations

import enum
from typing import Any

from services._runtime.errors import ReasonedError


class Reason(enum.Enum):
    """Schema FailureReason members the CRL service uses."""

    policyViolation = "policyViolation"
    signatureMismatch = "signatureMismatch"
    weakAlgorithm = "weakAlgorithm"
    expired = "expired"
    notYetValid = "notYetValid"
    ocspUnavailable = "ocspUnavailable"
    unknownAnchor = "unknownAnchor"


class Problem(enum.Enum):
    """What exactly made a CRL unusable."""

    crlMalformed = "crlMalformed"
    crlUnavailable = "crlUnavailable"
    crlUnknownIssuer = "crlUnknownIssuer"
    crlIssuerMismatch = "crlIssuerMismatch"
    crlIssuerNotAuthorized = "crlIssuerNotAuthorized"
    crlBadSignature = "crlBadSignature"
    crlSha1Signature = "crlSha1Signature"
    crlStale = "crlStale"
    crlNotYetValid = "crlNotYetValid"
    crlNoNextUpdate = "crlNoNextUpdate"
    crlNumberMissing = "crlNumberMissing"
    crlUnsupportedCriticalExtension = "crlUnsupportedCriticalExtension"
    crlScopeMismatch = "crlScopeMismatch"


PROBLEM_REASON: dict[Problem, Reason] = {
    Problem.crlMalformed: Reason.policyViolation,
    Problem.crlUnavailable: Reason.ocspUnavailable,
    Problem.crlUnknownIssuer: Reason.unknownAnchor,
    Problem.crlIssuerMismatch: Reason.policyViolation,
    Problem.crlIssuerNotAuthorized: Reason.policyViolation,
    Problem.crlBadSignature: Reason.signatureMismatch,
    Problem.crlSha1Signature: Reason.weakAlgorithm,
    Problem.crlStale: Reason.expired,
    Problem.crlNotYetValid: Reason.notYetValid,
    Problem.crlNoNextUpdate: Reason.policyViolation,
    Problem.crlNumberMissing: Reason.policyViolation,
    Problem.crlUnsupportedCriticalExtension: Reason.policyViolation,
    Problem.crlScopeMismatch: Reason.policyViolation,
}


class CrlError(ReasonedError):
    """A CRL that must not be used: problem, schema reason, detail."""

    reason: Reason

    def __init__(self, problem: Problem, detail: str, **context: Any) -> None:
        super().__init__(PROBLEM_REASON[problem],
                         f"{problem.value}: {detail}", **context)
        self.problem = problem


class CrlUnavailableError(CrlError):
    """The CRL could not be fetched (retryable)."""

    def __init__(self, detail: str, **context: Any) -> None:
        super().__init__(Problem.crlUnavailable, detail, **context)
