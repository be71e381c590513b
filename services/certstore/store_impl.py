"""``CertificateStore``: chains under stable handles, with rotation events.

A chain is stored as its certificates' DER, so a holder of the store
never depends on the process that handed the chain in. ``watch`` returns a
``CertSubscription``; its ``events`` call returns the rotations since the
last call, waiting up to ``wait_seconds`` for the first one so a TLS
server can hold one outstanding call and see a rotation at once.

With a :class:`~services.certstore.disk.DiskBackend` every ``put`` and
``delete`` is durable before it is acknowledged (atomic write-then-rename
with fsync), and the store reopens with what the disk holds; without
one it keeps chains in memory. A ``put`` over an existing chain is a
rotation: it is audited as ``rotate`` as well as ``put``, and every
``watch`` subscriber of the handle receives a ``CertRotationEvent``.
Puts run one at a time, so the disk and the subscribers see them in the
same order.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from services._runtime import audit as _audit
from services._runtime.boundary import CapabilityError
from services._runtime.clock import Clock, epoch_seconds
from services._runtime.schema import pki
from services.certstore.disk import DiskBackend
from services.x509.chain_impl import CertificateChainImpl
from services.x509.model import parse_certificate

#: Told ``(handle, leaf sha256, temporary file name)`` after a put's
#: record is synced in its temporary file and before the rename.
Announce = Callable[[str, str, str], None]

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
    """Chains by handle, in memory or on a :class:`DiskBackend`.

    :param commit_delay: fault injection: seconds between a put's synced
        temporary file and its rename (0 in normal use).
    :param announce: called just before each rename (see
        :data:`Announce`).
    """

    def __init__(self, clock: Clock, audit: _audit.AuditSink,
                 service: str = "certstore",
                 wait_seconds: float = 5.0,
                 backend: DiskBackend | None = None,
                 commit_delay: float = 0.0,
                 announce: Announce | None = None) -> None:
        self._commit_delay = commit_delay
        self._announce = announce
        self._put_lock = asyncio.Lock()
        self._chains: dict[str, list[bytes]] = {}
        self._subs: dict[str, list[CertSubscriptionImpl]] = {}
        self._clock = clock
        self._audit = audit
        self._service = service
        self._wait = wait_seconds
        self._backend = backend
        if backend is not None:
            self._open(backend)

    def _open(self, backend: DiskBackend) -> None:
        loaded = backend.load()
        self._chains.update(loaded.chains)
        for name in loaded.discarded_temps:
            self._emit("recover", "", None, outcome="ok",
                       detail=f"discarded unfinished write {name}")
        for handle, why in loaded.corrupt:
            self._emit("load", handle, None, outcome="error",
                       reason="policyViolation", detail=why)
        for handle in sorted(loaded.chains):
            self._emit("load", handle, loaded.chains[handle])

    def _emit(self, op: str, handle: str, ders: list[bytes] | None,
              outcome: str = "ok", reason: str = "",
              detail: str = "") -> None:
        subject = [handle] if handle else []
        if ders:
            leaf = x509.load_der_x509_certificate(ders[0])
            subject.append(leaf.fingerprint(hashes.SHA256()).hex())
        self._audit.emit(_audit.AuditEvent(
            at=self._clock.now(), service=self._service,
            capability="certStore", operation=op, outcome=outcome,
            reason=reason, subject=tuple(subject), detail=detail,
        ))

    def unsubscribe(self, sub: CertSubscriptionImpl) -> None:
        for subs in self._subs.values():
            if sub in subs:
                subs.remove(sub)

    async def put(self, handle: str, chain: Any, _context: Any,
                  **kwargs: Any) -> None:
        check_handle(handle)
        ders = await chain_ders(chain)
        async with self._put_lock:
            await self._durable_put(handle, ders)

    async def _write(self, handle: str, ders: list[bytes]) -> None:
        assert self._backend is not None
        tmp = self._backend.write_temp(handle, ders)
        if self._announce is not None:
            fp = x509.load_der_x509_certificate(ders[0]).fingerprint(
                hashes.SHA256()).hex()
            self._announce(handle, fp, tmp.name)
        if self._commit_delay:
            await asyncio.sleep(self._commit_delay)
        self._backend.commit(handle, tmp)

    async def _durable_put(self, handle: str, ders: list[bytes]) -> None:
        if self._backend is not None:
            try:
                await self._write(handle, ders)
            except OSError as err:
                self._emit("put", handle, ders, outcome="error",
                           reason="unavailable", detail=str(err))
                raise CapabilityError(
                    "unavailable", f"store disk: {err}") from err
        previous = self._chains.get(handle)
        self._chains[handle] = ders
        at = epoch_seconds(self._clock.now())
        subs = self._subs.get(handle, [])
        for sub in subs:
            sub.push(ders, at)
        self._emit("put", handle, ders)
        if previous is not None and previous != ders:
            self._emit("rotate", handle, ders,
                       detail=f"{len(subs)} subscriber(s) notified")

    async def get(self, handle: str, _context: Any, **kwargs: Any) -> Any:
        ders = self._chains.get(check_handle(handle))
        if ders is None:
            raise CapabilityError("notFound", f"no chain under {handle!r}")
        return CertificateChainImpl([parse_certificate(d) for d in ders])

    async def list(self, _context: Any, **kwargs: Any) -> list[str]:
        return sorted(self._chains)

    async def delete(self, handle: str, _context: Any,
                     **kwargs: Any) -> None:
        if check_handle(handle) not in self._chains:
            raise CapabilityError("notFound", f"no chain under {handle!r}")
        if self._backend is not None:
            self._backend.delete(handle)
        del self._chains[handle]
        self._emit("delete", handle, None)

    async def watch(self, handle: str, _context: Any, **kwargs: Any) -> Any:
        sub = CertSubscriptionImpl(self, check_handle(handle), self._wait)
        self._subs.setdefault(handle, []).append(sub)
        if handle in self._chains:
            sub.push(self._chains[handle], epoch_seconds(self._clock.now()))
        return sub
