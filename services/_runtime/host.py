"""The service side of capos-init's socketpair.

Each service process runs :func:`serve`: it exports one ``ServiceHost``
bootstrap to init and nothing else. When init calls ``start`` with the
capabilities and manifest sections the service's manifest entry grants,
the service module's ``build(ctx)`` turns them into the capabilities the
service exports. Listening sockets and virtio-serial ports init opened
for the service before its fork arrive as open files (``listeners``,
``devices``). There is no other way for a service to obtain authority:
no well-known path, port or socket.

A service module is any module with::

    async def build(ctx: ServiceContext) -> dict[str, capnp.Server]
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import capnp

from services._runtime import audit as _audit
from services._runtime import boundary, loop
from services._runtime.clock import Clock, SystemClock
from services._runtime.schema import pki, runtime

log = logging.getLogger(__name__)

BuildFn = Callable[["ServiceContext"], Awaitable[dict[str, Any]]]


class GrantError(KeyError):
    """A service asked for a capability or input it was not granted."""

    def __init__(self, service: str, kind: str, name: str) -> None:
        super().__init__(f"{service}: no {kind} named {name!r} was granted")
        self.service = service
        self.kind = kind
        self.name = name

    def __str__(self) -> str:
        return str(self.args[0])


class CapnpAuditSink:
    """Forwards audit events to an ``AuditLog`` capability.

    ``emit`` is synchronous for the pure layers' sake; the RPC goes out
    on the running event loop in emission order. :meth:`flush` waits for
    everything sent so far.
    """

    def __init__(self, audit_log: Any) -> None:
        self._log = audit_log
        self._pending: set[asyncio.Task[None]] = set()

    def emit(self, event: _audit.AuditEvent) -> None:
        record = {
            "atEpochMillis": int(event.at.timestamp() * 1000),
            "service": event.service,
            "capability": event.capability,
            "operation": event.operation,
            "outcome": event.outcome,
            "reason": event.reason,
            "subject": list(event.subject),
            "detail": event.detail,
            "correlation": event.correlation,
        }
        task = asyncio.get_running_loop().create_task(self._send(record))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send(self, record: dict[str, Any]) -> None:
        try:
            await self._log.record(event=record)
        except Exception as err:
            log.error("audit record lost: %s", err)

    async def flush(self) -> None:
        while self._pending:
            await asyncio.gather(*list(self._pending))


def _already_ready() -> asyncio.Event:
    ready = asyncio.Event()
    ready.set()
    return ready


@dataclasses.dataclass
class ServiceContext:
    """What a service is given, and all it is given."""

    name: str
    grants: dict[str, Any]
    inputs: dict[str, bytes]
    settings: dict[str, str]
    clock: Clock
    audit: _audit.AuditSink
    listeners: dict[int, socket.socket] = dataclasses.field(
        default_factory=dict
    )
    #: open file descriptors of the virtio-serial ports granted to the
    #: service, by port name (``devices`` in its manifest entry).
    devices: dict[str, int] = dataclasses.field(default_factory=dict)
    #: set once every service has started (init's ``ready`` call, sent
    #: as it says CAPOS-READY); already set for a context made without
    #: init. Work a service's start sets off but need not finish before
    #: the system is up waits for it: on one CPU it would otherwise run
    #: while the services after it start, and hold up the ready line.
    ready: asyncio.Event = dataclasses.field(default_factory=_already_ready)

    def cap(self, name: str, interface: Any) -> Any:
        """The granted capability ``name``, typed as ``interface``."""
        try:
            raw = self.grants[name]
        except KeyError:
            raise GrantError(self.name, "capability", name) from None
        return raw.cast_as(interface)

    def input(self, name: str) -> bytes:
        """The manifest section ``name`` granted to this service."""
        try:
            return self.inputs[name]
        except KeyError:
            raise GrantError(self.name, "input", name) from None


class ServiceHostImpl(runtime().ServiceHost.Server):  # type: ignore[misc]
    """The one bootstrap a service exports to init."""

    def __init__(self, name: str, build: BuildFn,
                 listeners: dict[int, socket.socket] | None = None,
                 devices: dict[str, int] | None = None) -> None:
        self._name = name
        self._build = build
        self._listeners = listeners or {}
        self._devices = devices or {}
        self._started = False
        self._ready = asyncio.Event()
        self._exports: dict[str, Any] = {}

    async def start(self, grants: Any, inputs: Any, _context: Any,
                    **kwargs: Any) -> None:
        if self._started:
            raise boundary.CapabilityError(
                "policyViolation", f"{self._name} was already started"
            )
        self._started = True
        # Each grant becomes a live client now, while start's params
        # exist: a pointer read from them after start returned is gone
        # ("non-capability pointer" in the guest). ``cap`` re-types it.
        holder = runtime().ServiceHost
        granted = {g.name: g.cap.as_interface(holder) for g in grants}
        data: dict[str, bytes] = {}
        settings: dict[str, str] = {}
        for item in inputs:
            if item.name.startswith("setting:"):
                settings[item.name[8:]] = bytes(item.data).decode()
            else:
                data[item.name] = bytes(item.data)
        sink: _audit.AuditSink
        if "audit" in granted:
            sink = CapnpAuditSink(granted["audit"].cast_as(pki().AuditLog))
        else:
            sink = _audit.MemoryAuditSink()
        ctx = ServiceContext(
            name=self._name, grants=granted, inputs=data,
            settings=settings, clock=SystemClock(), audit=sink,
            listeners=self._listeners, devices=self._devices,
            ready=self._ready,
        )
        self._exports = await self._build(ctx)
        _context.results.exports = [
            {"name": k, "cap": v} for k, v in sorted(self._exports.items())
        ]

    async def status(self, _context: Any, **kwargs: Any) -> None:
        r = _context.results
        r.name = self._name
        r.pid = os.getpid()
        r.ready = self._started

    async def ready(self, _context: Any, **kwargs: Any) -> None:
        self._ready.set()


def load_build(module: str) -> BuildFn:
    """Import a service module and return its ``build``."""
    mod = importlib.import_module(module)
    build = getattr(mod, "build", None)
    if build is None or not callable(build):
        raise ImportError(f"service module {module} has no build(ctx)")
    return build  # type: ignore[no-any-return]


async def _serve(name: str, build: BuildFn, sock: socket.socket,
                 listeners: dict[int, socket.socket],
                 devices: dict[str, int]) -> None:
    stream = await capnp.AsyncIoStream.create_connection(sock=sock)
    server = capnp.TwoPartyServer(
        stream, bootstrap=ServiceHostImpl(name, build, listeners, devices)
    )
    await server.on_disconnect()


def serve(name: str, build: BuildFn, sock: socket.socket,
          listeners: dict[int, socket.socket] | None = None,
          devices: dict[str, int] | None = None) -> None:
    """Run a service on its end of init's socketpair until init hangs up.

    :param listeners: listening sockets init created for this service,
        by the port its manifest entry names.
    :param devices: open virtio-serial ports init opened for this
        service, by the port name its manifest entry names.
    """
    loop.run(_serve(name, build, sock, listeners or {},
                                 devices or {}))
