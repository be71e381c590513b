"""The audit service: the ``AuditLog`` capability every service is granted.

Records are appended, one JSON line each, to ``audit.jsonl`` in the
service's own state directory (its ``stateDir`` input: on the VM's data
disk, or in RAM without one), and copied to the ``capos.audit``
virtio-serial port (the port the harness reads) when capos-init handed
it over (``devices`` in the service's manifest entry). The service is
told no path: both arrive as grants. ``since`` lets a holder read
records back by index. Each line is written with a single ``write`` and
flushed, so a power cut loses at most the record being written, never
an earlier one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from services._runtime.host import ServiceContext
from services._runtime.schema import pki

#: The virtio-serial port records leave the guest on.
PORT = "capos.audit"
#: The log's name in the service's state directory.
LOG_NAME = "audit.jsonl"

_FIELDS = (
    "atEpochMillis", "service", "capability", "operation", "outcome",
    "reason", "detail", "correlation",
)


def record_to_dict(record: Any) -> dict[str, Any]:
    """An ``AuditRecord`` reader as a plain dict."""
    body = {f: getattr(record, f) for f in _FIELDS}
    body["subject"] = list(record.subject)
    return body


class AuditLogImpl(pki().AuditLog.Server):  # type: ignore[misc]
    """Append-only audit log kept in memory and on each open file given.

    :param fds: open files every record line is written to (the log in
        the state directory, the virtio-serial port); owned from now on.
    """

    def __init__(self, fds: list[int]) -> None:
        self._records: list[dict[str, Any]] = []
        self._files = list(fds)

    async def record(self, event: Any, _context: Any, **kwargs: Any) -> None:
        body = record_to_dict(event)
        self._records.append(body)
        line = (json.dumps(body, sort_keys=True) + "\n").encode()
        for fd in self._files:
            os.write(fd, line)

    async def since(self, index: int, _context: Any, **kwargs: Any) -> None:
        tail = self._records[index:]
        _context.results.records = tail
        _context.results.next = index + len(tail)


async def build(ctx: ServiceContext) -> dict[str, Any]:
    fds = []
    state = ctx.inputs.get("stateDir")
    if state is not None:
        fds.append(os.open(Path(state.decode()) / LOG_NAME,
                           os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
    if PORT in ctx.devices:
        fds.append(ctx.devices[PORT])
    return {"auditLog": AuditLogImpl(fds)}
