"""The certstore service: exports ``certStore``.

Settings: ``certStoreDir``, optional: the directory of the on-disk
backend (in the VM, a mount of the virtio-blk data disk). Without it the
store is in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services._runtime.host import ServiceContext
from services.certstore.disk import DiskBackend
from services.certstore.store_impl import CertificateStoreImpl


async def build(ctx: ServiceContext) -> dict[str, Any]:
    directory = ctx.settings.get("certStoreDir")
    backend = DiskBackend(Path(directory)) if directory else None
    return {"certStore": CertificateStoreImpl(ctx.clock, ctx.audit,
                                              ctx.name, backend=backend)}
