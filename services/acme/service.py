"""The acme service: exports ``acmeClient``.

Grants: ``audit``, and ``trust``: the TrustStore whose anchors are the
only ones the client trusts when it speaks HTTPS to the ACME server.
Settings: ``acmeDirectory``, the directory URL.
"""

from __future__ import annotations

from typing import Any

from services._runtime.host import ServiceContext
from services._runtime.schema import pki
from services.acme.client_impl import AcmeClientImpl


async def build(ctx: ServiceContext) -> dict[str, Any]:
    trust = ctx.cap("trust", pki().TrustStore)
    certs = (await trust.anchors()).certs
    ders = [bytes((await c.der()).encoded) for c in certs]
    url = ctx.settings.get("acmeDirectory")
    if not url:
        raise ValueError("setting acmeDirectory is missing")
    return {"acmeClient": AcmeClientImpl(url, ders, ctx.clock, ctx.audit,
                                         ctx.name)}
