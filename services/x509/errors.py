"""Errors of the x509 service and its plain-Python ``Reason`` enum.

``Reason`` members are a subset of the schema ``FailureReason`` enum,
matched by name (member name and value both equal the schema enumerant).
"""

from __future__ import annotations

import enum
from typing import Any

from services._runtime.errors import ReasonedError


class Reason(enum.Enum):
    """Why a certificate operation was refused (schema FailureReason)."""

    unknownAnchor = "unknownAnchor"
    expired = "expired"
    notYetValid = "notYetValid"
    signatureMismatch = "signatureMismatch"
    nameMismatch = "nameMismatch"
    insufficientScts = "insufficientScts"
    revoked = "revoked"
    ocspUnavailable = "ocspUnavailable"
    weakAlgorithm = "weakAlgorithm"
    policyViolation = "policyViolation"
    badEku = "badEku"
    chainTooLong = "chainTooLong"
    nameConstraintViolation = "nameConstraintViolation"
    mustStapleMissing = "mustStapleMissing"
    pinMismatch = "pinMismatch"


class ServiceError(ReasonedError):
    """Root error: a reason, a short detail and structured context."""

    reason: Reason


class PolicyRejectedError(ServiceError):
    """The check ran and said no."""


class VerificationError(PolicyRejectedError):
    """A chain or signature failed verification."""


class CertificateParseError(ServiceError):
    """Input was not a well-formed certificate (reported policyViolation)."""

    def __init__(self, detail: str, **context: Any) -> None:
        super().__init__(Reason.policyViolation, detail, **context)


class ReadOnlyError(PolicyRejectedError):
    """A mutation was attempted through a read-only capability."""

    def __init__(self, detail: str, **context: Any) -> None:
        super().__init__(Reason.policyViolation, detail, **context)
