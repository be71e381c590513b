"""Audit events and the sinks they go to.

Audit is a separate channel from diagnostics logging. Every security
decision (a verification, an anchor change, an issuance, a refusal)
becomes one frozen :class:`AuditEvent`, handed to an injected
:class:`AuditSink`. Pure cores never audit; the ``*_impl`` layer does.

In the guest the sink forwards to the ``AuditLog`` capability that
capos-init grants every service (see ``services/audit``); on the host
and in tests, :class:`MemoryAuditSink` keeps the records.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from typing import Protocol


@dataclasses.dataclass(frozen=True)
class AuditEvent:
    """One security decision.

    :param at: when, from the service's injected clock (aware UTC).
    :param service: the service that decided.
    :param capability: the capability the caller held (e.g. ``verifier``).
    :param operation: the method (``verifyChain``, ``addAnchor``...).
    :param outcome: ``ok``, ``refused`` or ``error``.
    :param reason: the schema ``FailureReason`` name, or ``""``.
    :param subject: identifiers (fingerprints, handles, names).
    :param detail: a short human-readable detail.
    :param correlation: an id joining related records.
    """

    at: dt.datetime
    service: str
    capability: str
    operation: str
    outcome: str
    reason: str = ""
    subject: tuple[str, ...] = ()
    detail: str = ""
    correlation: str = dataclasses.field(
        # 64 random bits, as hex. (Not uuid4: importing uuid pulls in
        # platform, about 30 ms of every service's start under TCG.)
        default_factory=lambda: os.urandom(8).hex()
    )

    def to_json(self) -> str:
        """One line of JSON, the form kept on disk and on the wire."""
        body = dataclasses.asdict(self)
        body["at"] = self.at.isoformat()
        body["subject"] = list(self.subject)
        return json.dumps(body, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> AuditEvent:
        body = json.loads(line)
        body["at"] = dt.datetime.fromisoformat(body["at"])
        body["subject"] = tuple(body["subject"])
        return cls(**body)


class AuditSink(Protocol):
    """Where audit events go."""

    def emit(self, event: AuditEvent) -> None: ...


class MemoryAuditSink:
    """Keeps every event in a list; for tests and the host CLI."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def emit(self, event: AuditEvent) -> None:
        self.events.append(event)


class NullAuditSink:
    """Drops events. Only for benchmarks that measure without audit."""

    def emit(self, event: AuditEvent) -> None:
        del event
