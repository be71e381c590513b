"""The http-01 ``ChallengeSolver``, scoped to one HTTP path prefix.

The solver can publish a key authorization under
``/.well-known/acme-challenge/<token>`` of the gateway's HTTP listener
and nothing else: no other path, no other listener, no DNS, no ALPN.
The table it writes is shared with the gateway's HTTP responder only.
"""

from __future__ import annotations

import re
from typing import Any

from services._runtime.boundary import CapabilityError
from services._runtime.schema import pki

PREFIX = "/.well-known/acme-challenge/"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,256}$")


class ChallengeTable:
    """Token -> key authorization, for one path prefix."""

    def __init__(self, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self._entries: dict[str, str] = {}

    def publish(self, token: str, key_authorization: str) -> None:
        if not _TOKEN.match(token):
            raise CapabilityError(
                "policyViolation", "token is not a base64url string"
            )
        if not key_authorization.startswith(token + "."):
            raise CapabilityError(
                "policyViolation",
                "key authorization does not belong to the token",
            )
        self._entries[token] = key_authorization

    def withdraw(self, token: str) -> None:
        self._entries.pop(token, None)

    def lookup(self, path: str) -> str | None:
        if not path.startswith(self.prefix):
            return None
        return self._entries.get(path[len(self.prefix):])


class Http01SolverImpl(pki().ChallengeSolver.Server):  # type: ignore[misc]
    """Publishes http-01 responses in one :class:`ChallengeTable`."""

    def __init__(self, table: ChallengeTable) -> None:
        self._table = table

    async def solve(self, challenge: Any, _context: Any,
                    **kwargs: Any) -> bool:
        if str(challenge.type) != "http01":
            raise CapabilityError(
                "policyViolation",
                f"this solver publishes http-01 only, not {challenge.type}",
            )
        self._table.publish(challenge.token, challenge.keyAuthorization)
        return True

    async def cleanup(self, challenge: Any, _context: Any,
                      **kwargs: Any) -> None:
        self._table.withdraw(challenge.token)

    async def supports(self, _context: Any, **kwargs: Any) -> list[str]:
        return ["http01"]
