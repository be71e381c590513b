"""``OcspResponder`` server: the OCSP client as a capability.

``status(cert, issuer, atEpochSeconds)`` fetches the two certificates'
DER over RPC, asks the leaf's AIA responder through the injected
transport (:func:`services.ocsp.client.fetch_status`), and returns the
checked response. ``atEpochSeconds`` of 0 means the injected clock's
now. Every call is audited; failures reach the caller as
``<reason>: <problem>: <detail>`` (e.g. ``ocspUnavailable: ocspStale:
...``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from services._runtime.audit import AuditEvent, AuditSink
from services._runtime.boundary import CapabilityError
from services._runtime.clock import Clock, epoch_seconds, from_epoch
from services._runtime.schema import pki
from services.ocsp.client import (
    DEFAULT_SETTINGS,
    ClientSettings,
    fetch_status,
)
from services.ocsp.errors import ServiceError
from services.ocsp.model import CheckedResponse
from services.ocsp.transport import OcspTransport


def write_response(builder: Any, checked: CheckedResponse) -> None:
    """Fill a schema OcspResponse."""
    builder.der = checked.der
    builder.status = checked.status
    builder.thisUpdate = epoch_seconds(checked.this_update)
    builder.nextUpdate = epoch_seconds(checked.next_update)
    if checked.revocation_time is not None:
        builder.revocationTime = epoch_seconds(checked.revocation_time)
        builder.revocationReason = checked.revocation_reason


def describe(cert: x509.Certificate) -> str:
    """Serial plus SHA-256 fingerprint, the form audit records use."""
    return (f"serial={cert.serial_number:x} "
            f"sha256={cert.fingerprint(hashes.SHA256()).hex()}")


class OcspResponderImpl(pki().OcspResponder.Server):  # type: ignore[misc]
    """Asks certificates' own responders."""

    def __init__(self, transport: OcspTransport, *, audit: AuditSink,
                 clock: Clock, settings: ClientSettings = DEFAULT_SETTINGS,
                 random: Callable[[int], bytes] = os.urandom,
                 service: str = "ocsp") -> None:
        self._transport = transport
        self._audit = audit
        self._clock = clock
        self._settings = settings
        self._random = random
        self._service = service

    def _emit(self, outcome: str, reason: str, subject: tuple[str, ...],
              detail: str) -> None:
        self._audit.emit(AuditEvent(
            at=self._clock.now(), service=self._service,
            capability="ocspResponder", operation="status",
            outcome=outcome, reason=reason, subject=subject, detail=detail))

    async def status(self, cert: Any, issuer: Any, atEpochSeconds: int,
                     _context: Any, **kwargs: Any) -> None:
        leaf_der = bytes((await cert.der()).encoded)
        issuer_der = bytes((await issuer.der()).encoded)
        try:
            leaf = x509.load_der_x509_certificate(leaf_der)
            ca = x509.load_der_x509_certificate(issuer_der)
        except ValueError as err:
            self._emit("refused", "policyViolation", (), str(err)[:120])
            raise CapabilityError("policyViolation",
                                  "not a DER certificate") from err
        at = from_epoch(atEpochSeconds) if atEpochSeconds else (
            self._clock.now())
        subject = (describe(leaf),)
        try:
            checked = fetch_status(leaf, ca, self._transport, at,
                                   self._settings, self._random)
        except ServiceError as err:
            self._emit("refused", err.reason.value, subject, err.detail)
            raise CapabilityError(err.reason.value, err.detail) from err
        self._emit("ok", "", subject,
                   f"{checked.status} thisUpdate="
                   f"{checked.this_update.isoformat()}"
                   + "".join(f" warning={w}" for w in checked.warnings))
        write_response(_context.results.init("response"), checked)
