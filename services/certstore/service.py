"""The certstore service: exports ``certStore``."""

from __future__ import annotations

from typing import Any

from services._runtime.host import ServiceContext
from services.certstore.store_impl import CertificateStoreImpl


async def build(ctx: ServiceContext) -> dict[str, Any]:
    return {"certStore": CertificateStoreImpl(ctx.clock, ctx.audit, ctx.name)}
