"""The audit service: the ``AuditLog`` capability every service is granted.

Records are appended, one JSON line each, to the file named by the
``auditPath`` setting (on the VM's data disk), and copied to the
``auditPort`` setting (the virtio-serial port the harness reads) when
one is given. ``since`` lets a holder read records back by index.
Each line is written with a single ``write`` and flushed, so a power cut
loses at most the record being written, never an earlier one.
"""

from __future__ import annotations

import json
import os
from typing import Any

from services._runtime.host import ServiceContext
from services._runtime.schema import pki

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
    """Append-only audit log kept in memory, on disk and on a port."""

    def __init__(self, path: str | None, port: str | None) -> None:
        self._records: list[dict[str, Any]] = []
        self._files = []
        for target in (path, port):
            if target:
                fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                             0o600)
                self._files.append(fd)

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
    return {
        "auditLog": AuditLogImpl(
            ctx.settings.get("auditPath"), ctx.settings.get("auditPort")
        )
    }
