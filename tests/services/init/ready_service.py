"""A test service that records, through its ``audit`` grant, whether
the system was ready when it started (operation ``start``, detail
``ready=<bool>``) and, once init says every service has started, that
it heard so (operation ``ready``)."""

from __future__ import annotations

import asyncio
from typing import Any

from services._runtime.audit import AuditEvent
from services._runtime.host import ServiceContext

_RUNNING: list[Any] = []


def _record(ctx: ServiceContext, operation: str, detail: str) -> None:
    ctx.audit.emit(AuditEvent(
        at=ctx.clock.now(), service=ctx.name, capability="probe",
        operation=operation, outcome="ok", detail=detail))


async def build(ctx: ServiceContext) -> dict[str, Any]:
    _record(ctx, "start", f"ready={ctx.ready.is_set()}")

    async def after() -> None:
        await ctx.ready.wait()
        _record(ctx, "ready", "")

    _RUNNING.append(asyncio.get_running_loop().create_task(after()))
    return {}
