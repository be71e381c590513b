"""The acme service: exports ``acmeClient``.

Grants: ``audit``, and ``trust``: the TrustStore whose anchors are the
only ones the client trusts when it speaks HTTPS to the ACME server.
Settings: ``acmeDirectory``, the directory URL.

The client behind ``acmeClient`` is made on its first call
(:mod:`services.acme.deferred_impl`): the ACME stack is imported only
when the boot needs it. What can be checked without it is checked
here, at start: the setting, and that the grant holds anchors.
"""

from __future__ import annotations

from typing import Any

from services._runtime.host import ServiceContext
from services._runtime.schema import pki
from services.acme.deferred_impl import DeferredAcmeClientImpl


async def build(ctx: ServiceContext) -> dict[str, Any]:
    trust = ctx.cap("trust", pki().TrustStore)
    certs = (await trust.anchors()).certs
    ders = [bytes((await c.der()).encoded) for c in certs]
    url = ctx.settings.get("acmeDirectory")
    if not url:
        raise ValueError("setting acmeDirectory is missing")
    if not ders:
        raise ValueError("the trust grant holds no anchors: refusing to "
                         "reach the ACME server trusting nothing")

    def make() -> Any:
        from services.acme.client_impl import AcmeClientImpl

        return AcmeClientImpl(url, ders, ctx.clock, ctx.audit, ctx.name)

    return {"acmeClient": DeferredAcmeClientImpl(make, ctx.clock, ctx.audit,
                                                 ctx.name)}
