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
5. Listening sockets and virtio-serial ports (``devices``) are opened by
   init before the service's fork and closed in init right after it, so
   each reaches only the service whose entry names it.
6. On any failure every process already started is killed and reaped:
   nothing half-started is left running.
"""

from __future__ import annotations

import dataclasses
import gc
import importlib
import json
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import capnp

from bootmanifest import graph
from bootmanifest.errors import ManifestError
from services._runtime import boundary, host
from services._runtime.schema import runtime
from services.init import prefork as prefork_imports


class BootError(Exception):
    """The boot cannot go on; ``reason`` is a short machine-readable word."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


#: A service entry as plain values: the build-time graph's own type, so
#: the graph is checked by one piece of code at build and at boot.
ServiceSpec = graph.Service
GrantSpec = graph.Grant


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
            has_network=s.network,
            listen=tuple(s.listen),
            state=s.state,
            devices=tuple(s.devices),
        )
        for s in manifest.services
    ]


def start_order(specs: Iterable[ServiceSpec],
                anchor_names: Iterable[str] | None = None,
                ) -> list[ServiceSpec]:
    """Services in dependency order, checked again at boot by
    :func:`bootmanifest.graph.validate`, the check the build ran.

    :param anchor_names: the manifest's extra anchors; ``None`` admits
        every ``anchor:`` input (:func:`section_inputs` still refuses
        one the manifest lacks).
    :raises BootError: ``unknownService``, ``unknownCapability``,
        ``unknownInput`` or ``badGraph``, naming the service and the bad
        name.
    """
    specs = tuple(specs)
    if anchor_names is None:
        anchor_names = {i.removeprefix(graph.ANCHOR_PREFIX) for s in specs
                        for i in s.inputs
                        if i.startswith(graph.ANCHOR_PREFIX)}
    try:
        return list(graph.validate(specs, anchor_names))
    except ManifestError as err:
        ctx = err.context
        reason = ("unknownCapability" if "cap" in ctx
                  else "unknownService" if "provider" in ctx
                  else "unknownInput" if "input" in ctx
                  else "badGraph")
        raise BootError(reason, err.detail) from err


def service_uid(index: int) -> int:
    """The uid a service runs as under isolation (its start position)."""
    return 61000 + index


def state_dirs(order: list[ServiceSpec], data: Path | None,
               isolated: bool, volatile: Path | None = None,
               ) -> dict[str, str]:
    """Make ``DATA/services/<name>`` (mode 0700) for each service whose
    entry asks for state, owned by that service's uid when isolated.
    Without a data disk they go under ``volatile`` instead (a RAM file
    system: gone at power-off); without either there are none, and such
    services keep their state in memory."""
    if data is None:
        data = volatile
    if data is None:
        return {}
    out: dict[str, str] = {}
    for index, spec in enumerate(order):
        if not spec.state:
            continue
        path = data / "services" / spec.name
        try:
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o700)
            if isolated:
                _chown_tree(path, service_uid(index))
        except OSError as err:
            raise BootError("stateFailed",
                            f"{spec.name}: {path}: {err.strerror}") from err
        out[spec.name] = str(path)
    return out


def _chown_tree(path: Path, uid: int) -> None:
    """Give the whole directory to ``uid``: a new manifest may move a
    service to another start position, so another uid."""
    os.chown(path, uid, uid)
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(top, name), uid, uid,
                     follow_symlinks=False)


def section_inputs(
    manifest: Any, spec: ServiceSpec, settings: dict[str, str],
    state_dir: str | None = None,
) -> list[dict[str, Any]]:
    """The manifest sections a service's entry names, as standalone
    messages: ``roots`` (RootBundle), ``ctLogs`` (CtLogList),
    ``presets`` (JSON list), ``anchor:<name>`` (DER); and ``stateDir``,
    the service's private directory, when it has one."""
    out: list[dict[str, Any]] = []
    if state_dir is not None:
        out.append({"name": "stateDir", "data": state_dir.encode()})
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
    """A forked service: its entry, pid, init's end of its socketpair
    and the ports it listens on (manifest port -> bound port)."""

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


#: Where Linux lists virtio-serial ports: ``<port>/name`` holds the
#: name the host gave the port; the device is ``/dev/<port>``.
VIRTIO_PORTS = Path("/sys/class/virtio-ports")


def find_port(name: str, ports: Path = VIRTIO_PORTS,
              dev: Path = Path("/dev")) -> Path | None:
    """The device of the virtio-serial port called ``name``, if any."""
    for entry in sorted(ports.glob("*")):
        try:
            if (entry / "name").read_text().strip() == name:
                return dev / entry.name
        except OSError:
            continue
    return None


def open_devices(spec: ServiceSpec,
                 device_map: dict[str, str]) -> dict[str, int]:
    """Open the virtio-serial ports a service's entry names, for that
    service alone. ``device_map`` puts a port name on another path (for
    running on a host). A port the machine does not have is left out
    (said on stderr): the service runs without it.

    :raises BootError: ``deviceFailed`` when a port exists but does not
        open.
    """
    out: dict[str, int] = {}
    for name in spec.devices:
        mapped = device_map.get(name)
        path = Path(mapped) if mapped else find_port(name)
        if path is None:
            print(f"capos-init: {spec.name}: no virtio-serial port named "
                  f"{name!r}; not handed over", file=sys.stderr)
            continue
        try:
            out[name] = os.open(path, os.O_RDWR | os.O_NOCTTY
                                | os.O_CLOEXEC)
        except OSError as err:
            for fd in out.values():
                os.close(fd)
            raise BootError("deviceFailed",
                            f"{spec.name}: {name} ({path}): "
                            f"{err.strerror}") from err
    return out


Isolate = Callable[[int, ServiceSpec], None]


#: Modules a service's code imports only once it runs, imported before
#: the fork so the children share them. pyca imports its OpenSSL backend
#: on the first ECDSA signature object: the CA and the gateway both make
#: one at start, and each imported it on its own (about 20 and 70 ms
#: under TCG, ``capos.debug=importtime``).
PREFORK_EXTRA = ("cryptography.hazmat.backends.openssl.backend",)


def spawn(
    order: list[ServiceSpec], isolate: Isolate | None = None,
    bind: str = "0.0.0.0", port_map: dict[int, int] | None = None,
    device_map: dict[str, str] | None = None,
    prefork: bool = False,
) -> list[Process]:
    """Fork one process per service. Must run before any capnp event
    loop exists in this process (kj state does not survive a fork).

    :param isolate: run in each child before the service starts, with
        the service's start position and entry (see capos-init's
        ``--isolate``).
    :param prefork: this process exists to fork the services (capos-init
        with the collector off): move every object the imports made into
        the collector's permanent generation before forking; each
        child's event loop does its collecting
        (:mod:`services._runtime.loop`). The children then never walk
        (and so never copy) the pages of the modules they share.
    """
    builds = {}
    for spec in order:
        try:
            builds[spec.name] = host.load_build(spec.module)
        except ImportError as err:
            raise BootError(
                "unknownModule", f"{spec.name}: {err}"
            ) from err
    if prefork:
        for name in PREFORK_EXTRA:
            importlib.import_module(name)
        gc.freeze()
        # A service may import what capos-init held back (the ACME
        # client imports ssl on its first call).
        prefork_imports.release()
    procs: list[Process] = []
    try:
        for index, spec in enumerate(order):
            listeners = open_listeners(spec, bind, port_map or {})
            try:
                devices = open_devices(spec, device_map or {})
            except BootError:
                for s in listeners.values():
                    s.close()
                raise
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
                               listeners, devices)
                except BaseException:
                    traceback.print_exc()
                    code = 1
                finally:
                    os._exit(code)
            theirs.close()
            ports = {p: s.getsockname()[1] for p, s in listeners.items()}
            for s in listeners.values():
                s.close()
            for fd in devices.values():
                os.close(fd)
            procs.append(Process(spec, pid, ours, ports))
    except BaseException:
        stop(procs)
        raise
    return procs


async def wire(
    manifest: Any, procs: list[Process], settings: dict[str, str],
    state_dirs: dict[str, str] | None = None,
    started: Callable[[str], None] | None = None,
) -> tuple[dict[tuple[str, str], Any], list[Any]]:
    """Start each service with its grants, then tell every service the
    system is up (``ready``); return every export and the client objects
    that must stay alive while the system runs.

    :param started: called with a service's name once its start returned
        (capos-init prints a boot stage for it).
    """
    exports: dict[tuple[str, str], Any] = {}
    keep: list[Any] = []
    hosts: list[Any] = []
    service_host_type = runtime().ServiceHost
    for proc in procs:
        spec = proc.spec
        stream = await capnp.AsyncIoStream.create_connection(sock=proc.sock)
        client = capnp.TwoPartyClient(stream)
        keep.append(client)
        service_host = client.bootstrap().cast_as(service_host_type)
        keep.append(service_host)
        hosts.append(service_host)
        grants = [
            {"name": g.name, "cap": exports[(g.provider, g.cap)]}
            for g in spec.grants
        ]
        inputs = section_inputs(manifest, spec, settings,
                                (state_dirs or {}).get(spec.name))
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
        if started is not None:
            started(spec.name)
    # Sent, not awaited: the caller says the system is ready first
    # (capos-init's CAPOS-READY) and the work each service then begins
    # does not hold that up. The calls stay alive in ``keep``.
    keep.extend(h.ready() for h in hosts)
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
