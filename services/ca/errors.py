"""Errors of the private CA and its plain-Python ``Reason`` enum.

``Reason`` members are a subset of the schema ``FailureReason`` enum,
matched by name. ``dimension`` in the context of a refusal names the
part of the issuance policy that said no (``nameSubtrees``,
``maxLifetimeSeconds``, ``keyTypes``, ``mustStaple``, ``purposes``,
``csr``).
"""

from __future__ import annotations

import enum
from typing import Any

from services._runtime.errors import ReasonedError


class Reason(enum.Enum):
    """Why a CA operation was refused (schema FailureReason)."""

    policyViolation = "policyViolation"
    nameConstraintViolation = "nameConstraintViolation"
    weakAlgorithm = "weakAlgorithm"
    signatureMismatch = "signatureMismatch"


class ServiceError(ReasonedError):
    """Root error: a reason, a short detail and structured context."""

    reason: Reason

    def __init__(self, reason: Reason, detail: str, **context: Any) -> None:
        super().__init__(reason, detail, **context)


class PolicyRejectedError(ServiceError):
    """The issuance policy said no (to a request or to a narrowing)."""

    @property
    def dimension(self) -> str:
        return str(self.context.get("dimension", ""))


class StoreError(ServiceError):
    """The CA directory is unusable (corrupt, or written by another CA)."""

    def __init__(self, detail: str, **context: Any) -> None:
        super().__init__(Reason.policyViolation, detail, **context)
