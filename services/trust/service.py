"""The trust service: the manifest's anchors as read-only TrustStores.

Inputs (manifest sections granted by the entry): ``roots`` (the Mozilla
root bundle, with trust bits and distrust-after dates) and any
``anchor:<name>`` extra anchors. Exports:

- ``webpki``: every root-program anchor, each trusted only for the
  purposes its trust bits grant, with its server and e-mail
  distrust-after dates (enforced by the verifier);
- ``<name>`` for each extra anchor ``anchor:<name>`` (as camelCase, e.g.
  ``acme-server-root`` -> ``acmeServerRoot``): a store holding that one
  anchor and nothing else.

No store exported here accepts ``addAnchor``: every export is a
read-only view. Write authority is a separate capability
(``TrustStoreImpl(..., writable=True)``) that no manifest entry grants
yet.

``webpki`` is made on its first call (:class:`DeferredTrustStoreImpl`):
the bundle is read at start, so a malformed one still fails the start,
but its roots are parsed only when someone asks the store. Parsing the
172 roots took 50-80 ms of the trust service's start in a TCG boot
(instrumented boots), and nothing asks before the system is ready.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from services._runtime.host import ServiceContext
from services._runtime.schema import manifest, pki
from services.x509.model import parse_certificate
from services.x509.trust import (
    ALL_PURPOSES,
    Anchor,
    TrustStoreCore,
    distrust,
)
from services.x509.truststore_impl import TrustStoreImpl

log = logging.getLogger(__name__)


def camel(name: str) -> str:
    head, *rest = name.split("-")
    return head + "".join(p.capitalize() for p in rest)


def _when(epoch: int) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(epoch, dt.UTC) if epoch else None


#: A root as the bundle gives it: label, DER, purposes, and the
#: distrust-after dates by purpose.
RootEntry = tuple[str, bytes, frozenset[str], dict[str, dt.datetime | None]]


def root_entries(bundle_bytes: bytes) -> list[RootEntry]:
    """The roots of a RootBundle message, not yet parsed.

    :raises capnp.KjException: not a RootBundle (``ValueError``: not
        even whole words).
    """
    out: list[RootEntry] = []
    with manifest().RootBundle.from_bytes(
        bundle_bytes, traversal_limit_in_words=1 << 26
    ) as bundle:
        for a in bundle.anchors:
            purposes = set()
            if a.trustServerAuth:
                purposes.add("tlsServerAuth")
            if a.trustEmail:
                purposes.add("emailSmime")
            if a.trustCodeSigning:
                purposes.add("codeSigning")
            out.append((a.label, bytes(a.der), frozenset(purposes), {
                "tlsServerAuth": _when(a.serverDistrustAfter),
                "emailSmime": _when(a.emailDistrustAfter),
            }))
    return out


def anchors_of(entries: list[RootEntry]) -> tuple[list[Anchor], list[str]]:
    """The entries parsed into anchors, and the labels skipped (why)."""
    anchors: list[Anchor] = []
    skipped: list[str] = []
    for label, der, purposes, dates in entries:
        try:
            cert = parse_certificate(der)
        except Exception as err:
            skipped.append(f"{label}: {err}")
            continue
        anchors.append(Anchor(cert=cert, label=label, purposes=purposes,
                              distrust_after=distrust(dates)))
    return anchors, skipped


def root_anchors(bundle_bytes: bytes) -> tuple[list[Anchor], list[str]]:
    """Anchors of a RootBundle message, and the labels skipped (why)."""
    return anchors_of(root_entries(bundle_bytes))


class DeferredTrustStoreImpl(pki().TrustStore.Server):  # type: ignore[misc]
    """Forwards each call to the store ``make()`` returns, made once, on
    the first call (a ``make`` that raises is tried again on the next)."""

    def __init__(self, make: Callable[[], TrustStoreImpl]) -> None:
        self._make = make
        self._store: TrustStoreImpl | None = None

    @property
    def loaded(self) -> bool:
        return self._store is not None

    def store(self) -> TrustStoreImpl:
        """The store, made if need be."""
        if self._store is None:
            self._store = self._make()
        return self._store

    async def anchors(self, _context: Any, **kwargs: Any) -> None:
        await self.store().anchors(_context, **kwargs)

    async def restrict(self, filter: Any, _context: Any,
                       **kwargs: Any) -> None:
        await self.store().restrict(filter, _context, **kwargs)

    async def addAnchor(self, cert: Any, pin: Any, _context: Any,
                        **kwargs: Any) -> None:
        await self.store().addAnchor(cert, pin, _context, **kwargs)

    async def removeAnchor(self, selector: Any, _context: Any,
                           **kwargs: Any) -> None:
        await self.store().removeAnchor(selector, _context, **kwargs)

    async def version(self, _context: Any, **kwargs: Any) -> int:
        return await self.store().version(_context, **kwargs)

    async def anchorInfo(self, _context: Any, **kwargs: Any) -> None:
        await self.store().anchorInfo(_context, **kwargs)

    async def snapshot(self, _context: Any, **kwargs: Any) -> None:
        await self.store().snapshot(_context, **kwargs)


async def build(ctx: ServiceContext) -> dict[str, Any]:
    exports: dict[str, Any] = {}
    if "roots" in ctx.inputs:
        entries = root_entries(ctx.input("roots"))

        def make() -> TrustStoreImpl:
            anchors, skipped = anchors_of(entries)
            for line in skipped:
                log.warning("root skipped: %s", line)
            return TrustStoreImpl(
                TrustStoreCore(tuple(anchors)), audit=ctx.audit,
                clock=ctx.clock, service=ctx.name,
            )

        exports["webpki"] = DeferredTrustStoreImpl(make)
    for name, der in ctx.inputs.items():
        if name.startswith("anchor:"):
            label = name[7:]
            anchor = Anchor(cert=parse_certificate(der), label=label,
                            purposes=ALL_PURPOSES)
            exports[camel(label)] = TrustStoreImpl(
                TrustStoreCore((anchor,)), audit=ctx.audit, clock=ctx.clock,
                service=ctx.name,
            )
    return exports
