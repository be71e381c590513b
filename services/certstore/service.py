"""The certstore service: exports ``certStore``.

Inputs: ``stateDir``, the service's private directory that capos-init
makes on the VM's virtio-blk data disk for entries with ``"state":
true`` (in RAM without a disk). The store keeps its records there
(:class:`~services.certstore.disk.DiskBackend`); without the input it
keeps them in memory. No path comes from a setting: settings reach
every service, so a path there would be ambient authority.

Settings: ``faultStoreCommitDelay``, fault injection only (a VM test
sets it; nothing else should): seconds to wait between a ``put``'s
synced temporary file and its rename, so the harness can cut the power
inside that window and show that the old record survives.

Console: ``CAPOS-CERTSTORE renaming handle=<h> sha256=<leaf> tmp=<file>``
just before each rename over a record, so the harness can see a put in
progress.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services._runtime.host import ServiceContext
from services.certstore.disk import DiskBackend
from services.certstore.store_impl import CertificateStoreImpl


def say(line: str) -> None:
    print(f"CAPOS-CERTSTORE {line}", flush=True)


def commit_delay(settings: dict[str, str]) -> float:
    """The ``faultStoreCommitDelay`` setting in seconds (0 when unset).

    :raises ValueError: a value that is not a number in [0, 600].
    """
    raw = settings.get("faultStoreCommitDelay", "")
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(
            f"setting faultStoreCommitDelay={raw!r}: not a number") from None
    if not 0 <= value <= 600:
        raise ValueError(
            f"setting faultStoreCommitDelay={raw!r}: outside 0..600 s")
    return value


async def build(ctx: ServiceContext) -> dict[str, Any]:
    state = ctx.inputs.get("stateDir")
    backend = DiskBackend(Path(state.decode())) if state else None
    return {"certStore": CertificateStoreImpl(
        ctx.clock, ctx.audit, ctx.name, backend=backend,
        commit_delay=commit_delay(ctx.settings),
        announce=lambda handle, fp, tmp: say(
            f"renaming handle={handle} sha256={fp} tmp={tmp}"))}
