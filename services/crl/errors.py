"""Errors of the CRL service: a schema ``Reason`` and a finer
``Problem`` (the names field report 13 uses), mapped in one table."""

from __future__ import annotations

import enum
from typing import Any


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


class CrlError(Exception):
    """A CRL that must not be used: problem, schema reason, detail."""

    def __init__(self, problem: Problem, detail: str, **context: Any) -> None:
        self.problem = problem
        self.reason = PROBLEM_REASON[problem]
        self.detail = f"{problem.value}: {detail}"
        super().__init__(f"{self.reason.value}: {self.detail}")
        self.context = context


class CrlUnavailableError(CrlError):
    """The CRL could not be fetched (retryable)."""

    def __init__(self, detail: str, **context: Any) -> None:
        super().__init__(Problem.crlUnavailable, detail, **context)
