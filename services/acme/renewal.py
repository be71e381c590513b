"""Renewal: when each stored certificate is renewed, and the loop that
renews it.

:class:`RenewalScheduler` keeps one entry per certificate-store handle
and decides with :mod:`services.acme.policy` (a third of the lifetime
left, half for ten days or less, earlier inside an RFC 9773 renewal
window, jittered; backoff after failures; certificates due together at
boot spread out). It reads time only from the injected clock and draws
jitter from the ``random.Random`` it is given, so tests seed it.

:class:`Renewer` drives it: for each due handle it asks the granted
``AcmeClient`` to renew the stored chain, puts the new chain under the
same handle (the store notifies its watchers: that is the rotation), and
writes an audit record of every decision.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Awaitable, Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from services._runtime import audit as _audit
from services._runtime.boundary import parse_remote
from services._runtime.clock import Clock
from services.acme import policy

WindowSource = Callable[[bytes], Awaitable[policy.RenewalWindow | None]]


@dataclasses.dataclass(frozen=True)
class Entry:
    """One tracked certificate."""

    handle: str
    not_before: dt.datetime
    not_after: dt.datetime
    at: dt.datetime
    failures: int = 0


class RenewalScheduler:
    """When each handle is next renewed."""

    def __init__(self, clock: Clock, rng: random.Random) -> None:
        self._clock = clock
        self._rng = rng
        self.entries: dict[str, Entry] = {}

    def track(self, handle: str, cert: x509.Certificate,
              window: policy.RenewalWindow | None = None) -> Entry:
        """(Re)schedule ``handle`` for a freshly obtained certificate."""
        nb, na = cert.not_valid_before_utc, cert.not_valid_after_utc
        entry = Entry(handle, nb, na,
                      policy.renewal_time(nb, na, self._rng, window))
        self.entries[handle] = entry
        return entry

    def boot(self, certs: dict[str, tuple[x509.Certificate,
                                          policy.RenewalWindow | None]]
             ) -> dict[str, dt.datetime]:
        """Track every certificate found at boot, spreading those already
        due so they do not all renew at once."""
        for handle, (cert, window) in certs.items():
            self.track(handle, cert, window)
        spread = policy.spread(
            {h: self.entries[h].at for h in certs}, self._clock.now(),
            self._rng, {h: self.entries[h].not_after for h in certs})
        for handle, at in spread.items():
            self.entries[handle] = dataclasses.replace(
                self.entries[handle], at=at)
        return spread

    def due(self) -> list[str]:
        """Handles whose time has come, most urgent first."""
        now = self._clock.now()
        ready = [e for e in self.entries.values() if e.at <= now]
        return [e.handle for e in sorted(ready, key=lambda e: e.at)]

    def failed(self, handle: str) -> Entry:
        entry = self.entries[handle]
        failures = entry.failures + 1
        entry = dataclasses.replace(
            entry, failures=failures,
            at=policy.retry_after_failure(failures, self._clock.now(),
                                          entry.not_after, self._rng))
        self.entries[handle] = entry
        return entry


@dataclasses.dataclass(frozen=True)
class Binding:
    """What renewing one handle needs: its key and its solver (both
    capabilities the owner of the certificate holds)."""

    cert_key: Any
    solver: Any


class Renewer:
    """Renews due handles through an AcmeClient into a CertificateStore."""

    def __init__(self, acme: Any, store: Any, scheduler: RenewalScheduler,
                 clock: Clock, audit: _audit.AuditSink,
                 window_of: WindowSource | None = None,
                 service: str = "acme") -> None:
        self._acme = acme
        self._store = store
        self._scheduler = scheduler
        self._clock = clock
        self._audit = audit
        self._window_of = window_of
        self._service = service
        self.bindings: dict[str, Binding] = {}

    def _emit(self, op: str, outcome: str, subject: tuple[str, ...],
              reason: str = "", detail: str = "") -> None:
        self._audit.emit(_audit.AuditEvent(
            at=self._clock.now(), service=self._service,
            capability="renewer", operation=op, outcome=outcome,
            reason=reason, subject=subject, detail=detail))

    async def _window(self, der: bytes) -> policy.RenewalWindow | None:
        if self._window_of is None:
            return None
        return await self._window_of(der)

    async def adopt(self, handle: str, binding: Binding) -> Entry:
        """Start renewing what the store holds under ``handle``."""
        self.bindings[handle] = binding
        cert = await _leaf(await self._chain(handle))
        entry = self._scheduler.track(
            handle, cert, await self._window(_der(cert)))
        self._emit("schedule", "ok", (handle,), detail=entry.at.isoformat())
        return entry

    async def adopt_at_boot(self, bindings: dict[str, Binding]
                            ) -> dict[str, dt.datetime]:
        """Start renewing every handle found in the store at boot: those
        already due are spread over their own slots (no renewal storm,
        :func:`services.acme.policy.spread`)."""
        certs: dict[str, tuple[x509.Certificate,
                               policy.RenewalWindow | None]] = {}
        for handle, binding in bindings.items():
            self.bindings[handle] = binding
            cert = await _leaf(await self._chain(handle))
            certs[handle] = (cert, await self._window(_der(cert)))
        times = self._scheduler.boot(certs)
        for handle, at in sorted(times.items()):
            self._emit("schedule", "ok", (handle,),
                       detail=f"{at.isoformat()} (at boot)")
        return times

    def next_due(self) -> dt.datetime | None:
        """The earliest scheduled renewal of a bound handle."""
        times = [e.at for h, e in self._scheduler.entries.items()
                 if h in self.bindings]
        return min(times) if times else None

    def failed(self, handle: str, reason: str, detail: str) -> Entry:
        """Record a failure that happened before :meth:`tick` could try
        (e.g. no ACME account yet): back off and audit it."""
        entry = self._scheduler.failed(handle)
        self._emit("renew", "error", (handle,), reason,
                   f"{detail}; next try {entry.at.isoformat()}")
        return entry

    async def _chain(self, handle: str) -> Any:
        return (await self._store.get(handle=handle)).chain

    async def tick(self) -> list[tuple[str, str]]:
        """Renew every due handle once; ``(handle, outcome)`` pairs."""
        done = []
        for handle in self._scheduler.due():
            binding = self.bindings.get(handle)
            if binding is None:
                continue
            try:
                chain = await self._chain(handle)
                new = (await self._acme.renew(
                    chain=chain, certKey=binding.cert_key,
                    solver=binding.solver)).chain
                await self._store.put(handle=handle, chain=new)
            except Exception as err:
                reason, detail = parse_remote(err)
                entry = self._scheduler.failed(handle)
                self._emit("renew", "error", (handle,), reason,
                           f"{detail}; next try {entry.at.isoformat()}")
                done.append((handle, "error"))
                continue
            cert = await _leaf(new)
            entry = self._scheduler.track(
                handle, cert, await self._window(_der(cert)))
            self._emit("renew", "ok", (handle,),
                       detail=f"next {entry.at.isoformat()}")
            done.append((handle, "ok"))
        return done


async def _leaf(chain: Any) -> x509.Certificate:
    cert = (await chain.leaf()).cert
    return x509.load_der_x509_certificate(bytes((await cert.der()).encoded))


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)
