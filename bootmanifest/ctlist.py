"""Verifying and parsing Chrome's CT log list (v3 JSON schema).

Owns the log-list input of the boot manifest. :func:`verify_signature`
checks ``log_list.sig`` over the *exact* bytes of ``log_list.json`` with
Google's RSA key (PKCS#1 v1.5, SHA-256), before any parsing, and a bad
signature stops the build. :func:`parse` turns the operators' ``logs``
(RFC 6962) and ``tiled_logs`` (static-ct-api) into :class:`CtLog` values.

The log id is checked against SHA-256 of the key, as RFC 6962 section 3.2
defines it. For tiled logs the manifest keeps the monitoring URL, since
the guest reads logs and never submits to them.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bootmanifest.errors import ManifestError, Reason


@dataclass(frozen=True)
class CtLog:
    """One log of the list."""

    log_id: bytes
    key_der: bytes
    url: str
    mmd: int
    state: str
    state_since: int
    temporal_start: int
    temporal_end: int
    operator: str
    description: str
    is_tiled: bool


@dataclass(frozen=True)
class CtLogListData:
    """The verified list."""

    version: str
    timestamp: str
    sha256: bytes
    logs: tuple[CtLog, ...]


def verify_signature(data: bytes, signature: bytes, pubkey_pem: bytes) -> None:
    """Check the list's signature over its exact bytes.

    :raises ManifestError: ``ctListSignature`` if it does not verify or the
        key is not an RSA public key.
    """
    key = serialization.load_pem_public_key(pubkey_pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ManifestError(
            Reason.CT_LIST_SIGNATURE, "log list key is not RSA"
        )
    try:
        key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as err:
        raise ManifestError(
            Reason.CT_LIST_SIGNATURE,
            "log_list.sig does not verify over log_list.json",
            sha256=hashlib.sha256(data).hexdigest(),
        ) from err


def _epoch(text: str | None) -> int:
    if not text:
        return 0
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def _log(entry: dict[str, Any], operator: str, tiled: bool) -> CtLog:
    key = base64.b64decode(entry["key"])
    log_id = base64.b64decode(entry["log_id"])
    description = entry.get("description", "")
    if hashlib.sha256(key).digest() != log_id:
        raise ManifestError(
            Reason.CT_LIST_MALFORMED,
            f"log id is not SHA-256 of the key: {description}",
            log=description,
        )
    states = entry.get("state") or {}
    if len(states) > 1:
        raise ManifestError(
            Reason.CT_LIST_MALFORMED, f"several states: {description}"
        )
    state, since = next(iter(states.items()), ("", {}))
    since = since if isinstance(since, dict) else {}
    interval = entry.get("temporal_interval") or {}
    url = entry["monitoring_url"] if tiled else entry["url"]
    return CtLog(
        log_id=log_id,
        key_der=key,
        url=url,
        mmd=int(entry.get("mmd", 0)),
        state=state,
        state_since=_epoch(since.get("timestamp")),
        temporal_start=_epoch(interval.get("start_inclusive")),
        temporal_end=_epoch(interval.get("end_exclusive")),
        operator=operator,
        description=description,
        is_tiled=tiled,
    )


def parse(data: bytes) -> CtLogListData:
    """Parse a (verified) v3 log list.

    :raises ManifestError: ``ctListMalformed`` on bad JSON or fields.
    """
    try:
        doc = json.loads(data)
        logs = tuple(
            _log(entry, op["name"], tiled)
            for op in doc["operators"]
            for tiled, key in ((False, "logs"), (True, "tiled_logs"))
            for entry in op.get(key, [])
        )
        return CtLogListData(
            version=str(doc["version"]),
            timestamp=str(doc["log_list_timestamp"]),
            sha256=hashlib.sha256(data).digest(),
            logs=logs,
        )
    except (ValueError, KeyError, TypeError) as err:
        raise ManifestError(
            Reason.CT_LIST_MALFORMED, f"log list: {err}"
        ) from err


def load(data: bytes, signature: bytes, pubkey_pem: bytes) -> CtLogListData:
    """Verify, then parse. The order matters: parse only signed bytes."""
    verify_signature(data, signature, pubkey_pem)
    return parse(data)
