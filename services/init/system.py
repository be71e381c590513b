"""capos-init's core: start each service as its own process and wire it.

Rules this module keeps:

1. Nothing is started until the manifest has been verified (the caller
   passes an already verified ``BootManifest`` reader).
2. Every grant is resolved before any process is forked: an unknown
   provider, capability, input section or module stops the boot with a
   :class:`BootError` naming the service and the bad name.
3. Services start in dependency order. Each gets one socketpair to init
   and receives exactly the capabilities its entry grants, as live
   references; a capability exported by one service and granted to
   another is proxied through init.
4. A service must export exactly what its entry declares.
5. On any failure every process already started is killed and reaped:
   nothing half-started is left running.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Iterable
from typing import Any

import capnp  # type: ignore[import-untyped]

from services._runtime import boundary, host
from services._runtime.schema import runtime


class BootError(Exception):
    """The boot cannot go on; ``reason`` is a short machine-readable word."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class GrantSpec:
    name: str
    provider: str
    cap: str


@dataclasses.dataclass(frozen=True)
class ServiceSpec:
    """One service entry of the manifest, as plain values."""

    name: str
    module: str
    exports: tuple[str, ...]
    grants: tuple[GrantSpec, ...]
    inputs: tuple[str, ...]
    network: bool
    listen: tuple[int, ...] = ()


def specs_from_manifest(manifest: Any) -> list[ServiceSpec]:
    return [
        ServiceSpec(
            name=s.name,
            module=s.module,
            exports=tuple(s.exports),
            grants=tuple(
                GrantSpec(g.name, g.provider, g.cap) for g in s.grants
            ),
            inputs=tuple(s.inputs),
            network=s.network,
            listen=tuple(s.listen),
        )
        for s in manifest.services
    ]


def start_order(specs: Iterable[ServiceSpec]) -> list[ServiceSpec]:
    """Services in dependency order; raises :class:`BootError` on a bad
    graph (unknown provider or capability, duplicate name, cycle)."""
    by_name: dict[str, ServiceSpec] = {}
    for spec in specs:
        if spec.name in by_name:
            raise BootError("badGraph", f"service {spec.name!r} twice")
        by_name[spec.name] = spec
    for spec in by_name.values():
        for g in spec.grants:
            provider = by_name.get(g.provider)
            if provider is None:
                raise BootError(
                    "unknownService",
                    f"{spec.name} is granted {g.name!r} from unknown "
                    f"service {g.provider!r}",
                )
            if g.cap not in provider.exports:
                raise BootError(
                    "unknownCapability",
                    f"{spec.name} is granted {g.cap!r}, which "
                    f"{g.provider} does not export",
                )
    order: list[ServiceSpec] = []
    state: dict[str, int] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join((*path, name))
            raise BootError("badGraph", f"grant cycle: {cycle}")
        state[name] = 1
        for g in by_name[name].grants:
            visit(g.provider, (*path, name))
        state[name] = 2
        order.append(by_name[name])

    for name in by_name:
        visit(name, ())
    return order


def section_inputs(
    manifest: Any, spec: ServiceSpec, settings: dict[str, str]
) -> list[dict[str, Any]]:
    """The manifest sections a service's entry names, as standalone
    messages: ``roots`` (RootBundle), ``ctLogs`` (CtLogList),
    ``presets`` (JSON list), ``anchor:<name>`` (DER)."""
    out: list[dict[str, Any]] = []
    extra = {a.name: bytes(a.der) for a in manifest.extraAnchors}
    for name in spec.inputs:
        if name == "roots":
            data = manifest.rootBundle.as_builder().to_bytes()
        elif name == "ctLogs":
            data = manifest.ctLogList.as_builder().to_bytes()
        elif name == "presets":
            data = json.dumps(
                [p.to_dict() for p in manifest.presets], sort_keys=True
            ).encode()
        elif name.startswith("anchor:") and name[7:] in extra:
            data = extra[name[7:]]
        else:
            raise BootError(
                "unknownInput",
                f"{spec.name} names manifest section {name!r}, "
                "which the manifest does not have",
            )
        out.append({"name": name, "data": data})
    for key, value in sorted(settings.items()):
        out.append({"name": f"setting:{key}", "data": value.encode()})
    return out


@dataclasses.dataclass
class Process:
    spec: ServiceSpec
    pid: int
    sock: socket.socket
    ports: dict[int, int] = dataclasses.field(default_factory=dict)


def open_listeners(
    spec: ServiceSpec, bind: str, port_map: dict[int, int]
) -> dict[int, socket.socket]:
    """Listening sockets for the ports a service's entry names, made by
    init and handed only to that service. ``port_map`` moves a manifest
    port elsewhere (0: any free port), for host tests."""
    out: dict[int, socket.socket] = {}
    try:
        for port in spec.listen:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            out[port] = s
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((bind, port_map.get(port, port)))
            s.listen(128)
    except OSError as err:
        for s in out.values():
            s.close()
        raise BootError(
            "listenFailed", f"{spec.name}: port {port}: {err.strerror}"
        ) from err
    return out


Isolate = Callable[[int, ServiceSpec], None]


def spawn(
    order: list[ServiceSpec], isolate: Isolate | None = None,
    bind: str = "0.0.0.0", port_map: dict[int, int] | None = None,
) -> list[Process]:
    """Fork one process per service. Must run before any capnp event
    loop exists in this process (kj state does not survive a fork)."""
    builds = {}
    for spec in order:
        try:
            builds[spec.name] = host.load_build(spec.module)
        except ImportError as err:
            raise BootError(
                "unknownModule", f"{spec.name}: {err}"
            ) from err
    procs: list[Process] = []
    try:
        for index, spec in enumerate(order):
            listeners = open_listeners(spec, bind, port_map or {})
            ours, theirs = socket.socketpair()
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                code = 0
                try:
                    ours.close()
                    for p in procs:
                        p.sock.close()
                    if isolate is not None:
                        isolate(index, spec)
                    host.serve(spec.name, builds[spec.name], theirs,
                               listeners)
                except BaseException:
                    traceback.print_exc()
                    code = 1
                finally:
                    os._exit(code)
            theirs.close()
            ports = {p: s.getsockname()[1] for p, s in listeners.items()}
            for s in listeners.values():
                s.close()
            procs.append(Process(spec, pid, ours, ports))
    except BaseException:
        stop(procs)
        raise
    return procs


async def wire(
    manifest: Any, procs: list[Process], settings: dict[str, str]
) -> tuple[dict[tuple[str, str], Any], list[Any]]:
    """Start each service with its grants; return every export and the
    client objects that must stay alive while the system runs."""
    exports: dict[tuple[str, str], Any] = {}
    keep: list[Any] = []
    service_host_type = runtime().ServiceHost
    for proc in procs:
        spec = proc.spec
        stream = await capnp.AsyncIoStream.create_connection(sock=proc.sock)
        client = capnp.TwoPartyClient(stream)
        keep.append(client)
        service_host = client.bootstrap().cast_as(service_host_type)
        keep.append(service_host)
        grants = [
            {"name": g.name, "cap": exports[(g.provider, g.cap)]}
            for g in spec.grants
        ]
        inputs = section_inputs(manifest, spec, settings)
        try:
            result = await service_host.start(grants=grants, inputs=inputs)
        except capnp.KjException as err:
            raise BootError(
                "serviceFailed",
                f"{spec.name} failed to start: {_short(err)}",
            ) from err
        got = {e.name: e.cap for e in result.exports}
        if set(got) != set(spec.exports):
            raise BootError(
                "badExports",
                f"{spec.name} exported {sorted(got)}, manifest declares "
                f"{sorted(spec.exports)}",
            )
        for name, cap in got.items():
            exports[(spec.name, name)] = cap
    return exports, keep


def _short(err: capnp.KjException) -> str:
    """The remote error's reason and detail, without capnp's framing."""
    reason, detail = boundary.parse_remote(err)
    return f"{reason}: {detail}"[:300]


def stop(procs: list[Process], timeout: float = 5.0) -> None:
    """Terminate and reap every process; kill what does not exit."""
    for p in procs:
        try:
            p.sock.close()
        except OSError:
            pass
        try:
            os.kill(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for p in procs:
        _reap(p.pid, timeout)


def _reap(pid: int, timeout: float) -> None:
    import time  # local: supervision only, not policy

    deadline = time.monotonic() + timeout
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            return
        time.sleep(0.02)
