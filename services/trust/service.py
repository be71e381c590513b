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
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from services._runtime.host import ServiceContext
from services._runtime.schema import manifest
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


def root_anchors(bundle_bytes: bytes) -> tuple[list[Anchor], list[str]]:
    """Anchors of a RootBundle message, and the labels skipped (why)."""
    anchors: list[Anchor] = []
    skipped: list[str] = []
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
            try:
                cert = parse_certificate(bytes(a.der))
            except Exception as err:
                skipped.append(f"{a.label}: {err}")
                continue
            anchors.append(Anchor(
                cert=cert, label=a.label, purposes=frozenset(purposes),
                distrust_after=distrust({
                    "tlsServerAuth": _when(a.serverDistrustAfter),
                    "emailSmime": _when(a.emailDistrustAfter),
                }),
            ))
    return anchors, skipped


async def build(ctx: ServiceContext) -> dict[str, Any]:
    exports: dict[str, Any] = {}
    if "roots" in ctx.inputs:
        anchors, skipped = root_anchors(ctx.input("roots"))
        for line in skipped:
            log.warning("root skipped: %s", line)
        exports["webpki"] = TrustStoreImpl(
            TrustStoreCore(tuple(anchors)), audit=ctx.audit,
            clock=ctx.clock, service=ctx.name,
        )
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
