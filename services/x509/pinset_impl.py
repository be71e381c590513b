"""``PinSet`` server over a :class:`~services.x509.pinning.PinSetCore`.

Design: ``enforce(chain)`` verifies first, then pins. A pin set is
minted with a ``CertVerifier`` and a ``TrustStore`` capability and the
purpose and hostname it guards (one pin set per pinned service, as HPKP
pinned per host). ``enforce`` calls ``verifier.verifyChain`` and matches
the pins against the *verified path* the verifier returns
(``ValidChain.path``), never against the certificates the peer sent: a
peer can append a pinned certificate it did not chain through, so the
sent list proves nothing. A chain that does not verify is returned as
the verifier's failure, untouched; a verified chain that no pin matches
fails ``pinMismatch`` in ``enforce`` mode, and passes in ``reportOnly``
mode with an audit record (reason ``pinMismatch``, outcome ``ok``). An
expired pin set passes verified chains and says so in the record and in
``info`` (its ``expires``).

Write authority (``addPin``, ``removePin``) is fixed at minting, as for
trust stores: ``read_only()`` views refuse with ``policyViolation``.
Mode and expiry are fixed at minting too; no method changes them.
"""

from __future__ import annotations

from typing import Any

from services._runtime.audit import AuditEvent, AuditSink
from services._runtime.clock import Clock, epoch_seconds
from services._runtime.schema import pki
from services.x509.boundary import from_service_error
from services.x509.errors import ReadOnlyError, Reason, ServiceError
from services.x509.model import parse_certificate
from services.x509.pinning import Pin, PinSetCore, decide
from services.x509.verifier_impl import fetch_ders


def read_pin(reader: Any) -> Pin:
    """A :class:`Pin` from a schema ``Pin``; raises ServiceError."""
    return Pin(str(reader.hashAlgorithm), bytes(reader.spkiHash))


class PinSetImpl(pki().PinSet.Server):  # type: ignore[misc]
    """A pin set guarding one purpose and hostname."""

    def __init__(self, core: PinSetCore, *, verifier: Any, trust: Any,
                 purpose: str, hostname: str, audit: AuditSink,
                 clock: Clock, writable: bool = False,
                 service: str = "trust", name: str = "pinSet") -> None:
        self.core = core
        self._verifier = verifier
        self._trust = trust
        self._purpose = purpose
        self._hostname = hostname
        self._audit = audit
        self._clock = clock
        self.writable = writable
        self._service = service
        self._name = name

    def read_only(self) -> PinSetImpl:
        """A view of the same pins that refuses addPin/removePin."""
        return PinSetImpl(
            self.core, verifier=self._verifier, trust=self._trust,
            purpose=self._purpose, hostname=self._hostname,
            audit=self._audit, clock=self._clock, writable=False,
            service=self._service, name=self._name)

    def _emit(self, operation: str, outcome: str, reason: str = "",
              subject: tuple[str, ...] = (), detail: str = "") -> None:
        self._audit.emit(AuditEvent(
            at=self._clock.now(), service=self._service,
            capability=self._name, operation=operation, outcome=outcome,
            reason=reason, subject=subject, detail=detail[:400]))

    def _refuse_if_read_only(self, operation: str) -> None:
        if not self.writable:
            err = ReadOnlyError(
                f"read-only pin set: {operation} needs the write capability")
            self._emit(operation, "refused", err.reason.value,
                       detail=err.detail)
            raise from_service_error(err)

    async def pins(self, _context: Any, **kwargs: Any) -> None:
        pins = self.core.pins
        out = _context.results.init("entries", len(pins))
        for i, pin in enumerate(pins):
            out[i].spkiHash = pin.spki_hash
            out[i].hashAlgorithm = pin.hash_algorithm

    async def info(self, _context: Any, **kwargs: Any) -> None:
        _context.results.mode = self.core.mode
        _context.results.expires = (epoch_seconds(self.core.expires)
                                    if self.core.expires else 0)

    async def addPin(self, pin: Any, _context: Any, **kwargs: Any) -> None:
        self._refuse_if_read_only("addPin")
        try:
            value = read_pin(pin)
        except ServiceError as err:
            self._emit("addPin", "refused", err.reason.value,
                       detail=err.detail)
            raise from_service_error(err) from None
        new = self.core.add(value)
        self._emit("addPin", "ok", subject=(value.describe(),),
                   detail="added" if new else "already present")

    async def removePin(self, pin: Any, _context: Any,
                        **kwargs: Any) -> None:
        self._refuse_if_read_only("removePin")
        try:
            value = read_pin(pin)
        except ServiceError as err:
            self._emit("removePin", "refused", err.reason.value,
                       detail=err.detail)
            raise from_service_error(err) from None
        gone = self.core.remove(value)
        self._emit("removePin", "ok", subject=(value.describe(),),
                   detail="removed" if gone else "was not present")

    async def enforce(self, chain: Any, _context: Any,
                      **kwargs: Any) -> None:
        now = self._clock.now()
        reply = await self._verifier.verifyChain(
            chain, self._trust, self._purpose, epoch_seconds(now),
            self._hostname)
        outcome = reply.outcome
        context = (f"mode={self.core.mode} purpose={self._purpose} "
                   f"hostname={self._hostname}")
        if outcome.which() == "invalid":
            _context.results.outcome = outcome
            self._emit("enforce", "refused", str(outcome.invalid.reason),
                       detail=f"{context}; chain did not verify: "
                       f"{outcome.invalid.detail}")
            return
        ders = await fetch_ders(outcome.valid.path)
        try:
            path = [parse_certificate(d) for d in ders]
        except ServiceError as err:
            raise from_service_error(err) from None
        decision = decide(self.core, path, now)
        subject = tuple(c.describe() for c in path)
        if decision.passes:
            _context.results.outcome = outcome
            reason = ("" if decision.verdict != "mismatch"
                      else Reason.pinMismatch.value)
            self._emit("enforce", "ok", reason, subject,
                       f"{context}; {decision.detail}")
            return
        failure = _context.results.init("outcome").init("invalid")
        failure.reason = Reason.pinMismatch.value
        failure.detail = decision.detail
        self._emit("enforce", "refused", Reason.pinMismatch.value, subject,
                   f"{context}; {decision.detail}")
