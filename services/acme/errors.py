"""Errors of the ACME client, each with its own boundary reason.

Every class is a :class:`CapabilityError` (named as in the field
reports, hence no Error suffix), so a caller across the
capability boundary sees ``<reason>: <detail>`` where the reason is the
class's name in lower camel case (``acmeRateLimited``...). Problem
documents (RFC 8555 section 6.7, RFC 7807) travel in the detail as the
server sent them, compact JSON.
"""

from __future__ import annotations

import json
from typing import Any

from services._runtime.boundary import CapabilityError


def problem_text(problem: dict[str, Any] | None) -> str:
    """A problem document as one line of JSON ("" when there is none)."""
    if not problem:
        return ""
    return json.dumps(problem, sort_keys=True, separators=(",", ":"))


class AcmeError(CapabilityError):
    """A failure the server reported, with its problem document."""

    reason_name = "acmeError"

    def __init__(self, detail: str,
                 problem: dict[str, Any] | None = None) -> None:
        self.problem = problem or {}
        text = detail
        if self.problem:
            text = f"{detail}; problem {problem_text(self.problem)}"
        super().__init__(self.reason_name, text)


class AcmeBadNonce(AcmeError):  # noqa: N818
    """badNonce still returned after the retry limit (field report 16)."""

    reason_name = "acmeBadNonce"


class AcmeRateLimited(AcmeError):  # noqa: N818
    """429 ``rateLimited``: not retried inline (field report 17e).

    :ivar retry_after: seconds the server asked to wait, or ``None``.
    """

    reason_name = "acmeRateLimited"

    def __init__(self, detail: str, problem: dict[str, Any] | None,
                 retry_after: float | None) -> None:
        self.retry_after = retry_after
        when = ("no Retry-After" if retry_after is None
                else f"retry after {retry_after:.0f} s")
        super().__init__(f"{detail} ({when})", problem)


class AcmeOrderTimeout(AcmeError):  # noqa: N818
    """The order stayed pending or processing past the timeout."""

    reason_name = "acmeOrderTimeout"


class AcmeOrderInvalid(AcmeError):  # noqa: N818
    """The order or an authorization became ``invalid``."""

    reason_name = "acmeOrderInvalid"


class AcmeKeyInUse(AcmeError):  # noqa: N818
    """Key rollover answered 409: the new key already has an account."""

    reason_name = "acmeKeyInUse"


class AcmeUnavailable(AcmeError):  # noqa: N818
    """The server could not be reached."""

    reason_name = "unavailable"
