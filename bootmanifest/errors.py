"""Errors raised while building, signing or verifying a boot manifest.

One exception, :class:`ManifestError`, with a :class:`Reason` saying what
went wrong. Reasons are camelCase strings (a ``StrEnum``) so they compare
equal to the names used in the schema, audit records and CLI output.
"""

from __future__ import annotations

import enum
from typing import Any


class Reason(enum.StrEnum):
    """Why a manifest, or one of its inputs, was refused."""

    # Verification of a signed manifest (trust-admin path, capos-init).
    BAD_SIGNATURE = "badSignature"
    UNKNOWN_SIGNER = "unknownSigner"
    BELOW_THRESHOLD = "belowThreshold"
    EXPIRED = "expired"
    NOT_YET_VALID = "notYetValid"
    ROLLBACK = "rollback"
    MALFORMED = "malformed"
    # Build inputs.
    CT_LIST_SIGNATURE = "ctListSignature"
    CT_LIST_MALFORMED = "ctListMalformed"
    ROOTS_MISMATCH = "rootsMismatch"
    ROOTS_MALFORMED = "rootsMalformed"
    GRAPH = "graph"
    BAD_INPUT = "badInput"


class ManifestError(Exception):
    """A manifest or build input was refused.

    :param reason: what failed, a :class:`Reason` (or its string value).
    :param detail: one short human sentence; no tracebacks, no secrets.
    :param context: structured facts (service name, version, times).
    """

    def __init__(
        self, reason: Reason | str, detail: str = "", **context: Any
    ) -> None:
        self.reason = Reason(reason)
        self.detail = detail
        self.context = context
        super().__init__(f"{self.reason}: {detail}" if detail else reason)
