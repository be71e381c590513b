"""``CertificateStore``: chains under stable handles, with rotation events.

A chain is stored as its certificates' DER, so a holder of the store
never depends on the process that handed the chain in. ``watch`` returns a
``CertSubscription``; its ``events`` call returns the rotations since the
last call, waiting up to ``wait_seconds`` for the first one so a TLS
server can hold one outstanding call and see a rotation at once.

Persistence to the data disk lands with issue #4; this store is in
memory, which issue #2 allows.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from services._runtime import audit as _audit
from services._runtime.boundary import CapabilityError
from services._runtime.clock import Clock, epoch_seconds
from services._runtime.schema import pki
from services.x509.chain_impl import CertificateChainImpl
from services.x509.model import parse_certificate

_HANDLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_handle(handle: str) -> str:
    if not _HANDLE.match(handle):
        raise CapabilityError(
            "policyViolation",
            f"bad handle {handle!r}: 1-64 of [A-Za-z0-9._-], no leading "
            "punctuation",
        )
    return handle


async def chain_ders(chain: Any) -> list[bytes]:
    """The DER of every certificate of a ``CertificateChain`` capability."""
    certs = (await chain.certificates()).chain
    ders = [bytes((await c.der()).encoded) for c in certs]
    if not ders:
        raise CapabilityError("policyViolation", "empty chain")
    for der in ders:
        try:
            x509.load_der_x509_certificate(der)
        except ValueError as err:
            raise CapabilityError(
                "policyViolation", f"unparsable certificate: {err}"
            ) from err
    return ders


class CertSubscriptionImpl(pki().CertSubscription.Server):  # type: ignore[misc]
    def __init__(self, store: CertificateStoreImpl, handle: str,
                 wait_seconds: float) -> None:
        self._store = store
        self._handle = handle
        self._wait = wait_seconds
        self._queue: list[tuple[list[bytes], int]] = []
        self._event = asyncio.Event()
        self.cancelled = False

    def push(self, ders: list[bytes], at: int) -> None:
        self._queue.append((ders, at))
        self._event.set()

    async def events(self, _context: Any, **kwargs: Any) -> None:
        if self.cancelled:
            raise CapabilityError("policyViolation", "subscription cancelled")
        if not self._queue:
            try:
                await asyncio.wait_for(self._event.wait(), self._wait)
            except TimeoutError:
                pass
        batch, self._queue = self._queue, []
        self._event.clear()
        out = _context.results.init("events", len(batch))
        for i, (ders, at) in enumerate(batch):
            out[i].handle = self._handle
            out[i].newChain = CertificateChainImpl(
                [parse_certificate(d) for d in ders]
            )
            out[i].rotatedAt = at

    async def cancel(self, _context: Any, **kwargs: Any) -> None:
        self.cancelled = True
        self._store.unsubscribe(self)


class CertificateStoreImpl(pki().CertificateStore.Server):  # type: ignore[misc]
    """Chains by handle, in memory."""

    def __init__(self, clock: Clock, audit: _audit.AuditSink,
                 service: str = "certstore",
                 wait_seconds: float = 5.0) -> None:
        self._chains: dict[str, list[bytes]] = {}
        self._subs: dict[str, list[CertSubscriptionImpl]] = {}
        self._clock = clock
        self._audit = audit
        self._service = service
        self._wait = wait_seconds

    def _emit(self, op: str, handle: str, ders: list[bytes] | None) -> None:
        subject = [handle]
        if ders:
            leaf = x509.load_der_x509_certificate(ders[0])
            subject.append(leaf.fingerprint(hashes.SHA256()).hex())
        self._audit.emit(_audit.AuditEvent(
            at=self._clock.now(), service=self._service,
            capability="certStore", operation=op, outcome="ok",
            subject=tuple(subject),
        ))

    def unsubscribe(self, sub: CertSubscriptionImpl) -> None:
        for subs in self._subs.values():
            if sub in subs:
                subs.remove(sub)

    async def put(self, handle: str, chain: Any, _context: Any,
                  **kwargs: Any) -> None:
        check_handle(handle)
        ders = await chain_ders(chain)
        self._chains[handle] = ders
        at = epoch_seconds(self._clock.now())
        for sub in self._subs.get(handle, []):
            sub.push(ders, at)
        self._emit("put", handle, ders)

    async def get(self, handle: str, _context: Any, **kwargs: Any) -> Any:
        ders = self._chains.get(check_handle(handle))
        if ders is None:
            raise CapabilityError("notFound", f"no chain under {handle!r}")
        return CertificateChainImpl([parse_certificate(d) for d in ders])

    async def list(self, _context: Any, **kwargs: Any) -> list[str]:
        return sorted(self._chains)

    async def delete(self, handle: str, _context: Any,
                     **kwargs: Any) -> None:
        if self._chains.pop(check_handle(handle), None) is None:
            raise CapabilityError("notFound", f"no chain under {handle!r}")
        self._emit("delete", handle, None)

    async def watch(self, handle: str, _context: Any, **kwargs: Any) -> Any:
        sub = CertSubscriptionImpl(self, check_handle(handle), self._wait)
        self._subs.setdefault(handle, []).append(sub)
        if handle in self._chains:
            sub.push(self._chains[handle], epoch_seconds(self._clock.now()))
        return sub
