"""The dns-01 ``ChallengeSolver`` (RFC 8555 section 8.4), scoped to one
``_acme-challenge.<name>`` TXT name.

The solver holds a :class:`TxtRecord`: the authority to set and clear the
TXT values of exactly one DNS name, and nothing else. It stands in for a
DNS capability; :class:`ChallTestSrvTxtRecord` implements it over
pebble-challtestsrv's management API (``/set-txt``, ``/clear-txt``) on
127.0.0.1, which is the DNS server pebble resolves through. A challenge
for any other identifier is refused with ``policyViolation`` before
anything is published.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import urllib.error
import urllib.request
from typing import Any, Protocol

from services._runtime.boundary import CapabilityError
from services._runtime.schema import pki

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,256}$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def challenge_name(identifier: str) -> str:
    """``_acme-challenge.<name>.`` for a DNS identifier (a wildcard's
    ``*.`` is dropped, section 8.4), lower case, fully qualified."""
    name = identifier.lower().rstrip(".")
    name = name.removeprefix("*.")
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.match(x) for x in labels):
        raise CapabilityError("policyViolation",
                              f"not a DNS name: {identifier!r}")
    return f"_acme-challenge.{name}."


def txt_value(key_authorization: str) -> str:
    """The TXT value: base64url(SHA-256(key authorization)), unpadded."""
    digest = hashlib.sha256(key_authorization.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class TxtRecord(Protocol):
    """Authority over the TXT values of one DNS name."""

    name: str

    def set_txt(self, value: str) -> None: ...

    def clear_txt(self) -> None: ...


class ChallTestSrvTxtRecord:
    """One TXT name in pebble-challtestsrv, through its management API.

    :param management_url: ``http://127.0.0.1:<port>`` of challtestsrv.
    :param name: the one name this object may write, fully qualified.
    """

    def __init__(self, management_url: str, name: str) -> None:
        if not management_url.startswith("http://127.0.0.1:"):
            raise ValueError("challtestsrv management must be on 127.0.0.1")
        self._url = management_url.rstrip("/")
        self.name = name

    def _post(self, path: str, body: dict[str, str]) -> None:
        req = urllib.request.Request(
            self._url + path, data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                resp.read()
        except (urllib.error.URLError, OSError) as err:
            raise CapabilityError(
                "unavailable", f"DNS management {self._url}: {err}"
            ) from err

    def set_txt(self, value: str) -> None:
        self._post("/set-txt", {"host": self.name, "value": value})

    def clear_txt(self) -> None:
        self._post("/clear-txt", {"host": self.name})


def _quietly(fn: Any, *args: Any) -> tuple[str, str] | None:
    try:
        fn(*args)
    except CapabilityError as err:
        return err.reason, err.detail
    return None


async def _in_thread(fn: Any, *args: Any) -> None:
    """Run blocking DNS management off the loop. The failure comes back
    as text and is raised afresh here: an exception raised through this
    frame (which holds capabilities) must not be owned by the worker."""
    failed = await asyncio.to_thread(_quietly, fn, *args)
    if failed is not None:
        raise CapabilityError(*failed)


class Dns01SolverImpl(pki().ChallengeSolver.Server):  # type: ignore[misc]
    """Publishes dns-01 TXT values under one ``_acme-challenge`` name."""

    def __init__(self, record: TxtRecord) -> None:
        self._record = record

    def _check(self, challenge: Any) -> str:
        if str(challenge.type) != "dns01":
            raise CapabilityError(
                "policyViolation",
                f"this solver publishes dns-01 only, not {challenge.type}",
            )
        if str(challenge.identifier.type) != "dns":
            raise CapabilityError(
                "policyViolation",
                f"dns-01 needs a dns identifier, not "
                f"{challenge.identifier.type}")
        name = challenge_name(str(challenge.identifier.value))
        if name != self._record.name:
            raise CapabilityError(
                "policyViolation",
                f"outside scope: {name} is not {self._record.name}")
        return name

    async def solve(self, challenge: Any, _context: Any,
                    **kwargs: Any) -> bool:
        self._check(challenge)
        token, keyauth = str(challenge.token), str(challenge.keyAuthorization)
        if not _TOKEN.match(token) or not keyauth.startswith(token + "."):
            raise CapabilityError(
                "policyViolation",
                "key authorization does not belong to the token")
        await _in_thread(self._record.set_txt, txt_value(keyauth))
        return True

    async def cleanup(self, challenge: Any, _context: Any,
                      **kwargs: Any) -> None:
        self._check(challenge)
        await _in_thread(self._record.clear_txt)

    async def supports(self, _context: Any, **kwargs: Any) -> list[str]:
        return ["dns01"]
