"""The service graph: which services boot, what they export and receive.

Owns the reading and validation of the service graph (``services.json``;
DESIGN.md section 3). Rules a valid graph keeps:

- service names are unique and non-empty; a service's exports are unique;
- every grant names an existing provider service and a capability that
  provider exports, and a grantee's local grant names are unique;
- the provider relation has no cycles (a service never depends on itself,
  directly or through others), so capos-init can start services in order;
- every input is ``roots``, ``ctLogs``, ``presets`` or
  ``anchor:<name>`` for an extra anchor supplied to this build;
- listening ports are 1-65535 and only on services with a network grant;
- every device is a virtio-serial port name (letters, digits, ``.``,
  ``_``, ``-``; 1-63 characters), named once in its entry, and granted
  to one service only: a port is one byte stream, and two holders would
  interleave (or read each other's) bytes.

Each error is a ``ManifestError(reason="graph")`` whose message and
context name the service and the bad name. Pure: takes parsed JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bootmanifest.errors import ManifestError, Reason

SECTIONS = ("roots", "ctLogs", "presets")
ANCHOR_PREFIX = "anchor:"
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_DEVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


@dataclass(frozen=True)
class Grant:
    """A capability granted to a service under a local name."""

    name: str
    provider: str
    cap: str


@dataclass(frozen=True)
class Service:
    """One service entry."""

    name: str
    module: str
    exports: tuple[str, ...]
    grants: tuple[Grant, ...]
    inputs: tuple[str, ...]
    has_network: bool
    listen: tuple[int, ...]
    #: capos-init gives the service a private directory on the data disk
    #: (its ``stateDir`` input), owned by the service's uid alone.
    state: bool = False
    #: virtio-serial ports (by name) capos-init opens and hands to this
    #: service alone, as open files.
    devices: tuple[str, ...] = ()


def _fail(service: str, detail: str, **context: Any) -> ManifestError:
    return ManifestError(
        Reason.GRAPH, f"service {service!r}: {detail}", service=service,
        **context,
    )


def _str_list(raw: dict[str, Any], key: str, service: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(
        isinstance(v, str) for v in value
    ):
        raise _fail(service, f"{key} must be a list of strings")
    return tuple(value)


def _service(raw: Any) -> Service:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise ManifestError(Reason.GRAPH, f"service without a name: {raw!r}")
    name = raw["name"]
    known = {"name", "module", "exports", "grants", "inputs", "network",
             "listen", "state", "devices"}
    extra = sorted(set(raw) - known)
    if extra:
        raise _fail(name, f"unknown field {extra[0]!r}", field=extra[0])
    grants = []
    for g in raw.get("grants", []):
        if not isinstance(g, dict) or not all(
            isinstance(g.get(k), str) for k in ("name", "provider", "cap")
        ):
            raise _fail(name, f"grant needs name, provider, cap: {g!r}")
        grants.append(Grant(g["name"], g["provider"], g["cap"]))
    listen = raw.get("listen", [])
    if not isinstance(listen, list) or not all(
        isinstance(p, int) and not isinstance(p, bool) for p in listen
    ):
        raise _fail(name, "listen must be a list of port numbers")
    return Service(
        name=name,
        module=str(raw.get("module", "")),
        exports=_str_list(raw, "exports", name),
        grants=tuple(grants),
        inputs=_str_list(raw, "inputs", name),
        has_network=bool(raw.get("network", False)),
        listen=tuple(listen),
        state=_bool(raw, "state", name),
        devices=_str_list(raw, "devices", name),
    )


def _bool(raw: dict[str, Any], key: str, service: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise _fail(service, f"{key} must be true or false")
    return value


def parse(data: bytes) -> tuple[Service, ...]:
    """Read a ``services.json`` document (``{"services": [...]}``)."""
    try:
        doc = json.loads(data)
    except ValueError as err:
        raise ManifestError(Reason.GRAPH, f"services.json: {err}") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), list):
        raise ManifestError(Reason.GRAPH, 'expected {"services": [...]}')
    return tuple(_service(s) for s in doc["services"])


def validate(
    services: Iterable[Service], anchor_names: Iterable[str] = ()
) -> tuple[Service, ...]:
    """Check the graph and return it in a start order (providers first).

    :param anchor_names: names of the extra anchors in this build.
    :raises ManifestError: ``graph``, naming the service and the bad name.
    """
    services = tuple(services)
    anchors = set(anchor_names)
    by_name: dict[str, Service] = {}
    for svc in services:
        if not svc.name:
            raise ManifestError(Reason.GRAPH, "service with an empty name")
        if svc.name in by_name:
            raise _fail(svc.name, "defined twice")
        by_name[svc.name] = svc
    holders: dict[str, str] = {}
    for svc in services:
        if not _MODULE.match(svc.module):
            raise _fail(svc.name, f"bad module {svc.module!r}",
                        module=svc.module)
        if len(set(svc.exports)) != len(svc.exports):
            raise _fail(svc.name, "exports a capability twice")
        seen: set[str] = set()
        for grant in svc.grants:
            if grant.name in seen:
                raise _fail(svc.name, f"grant name {grant.name!r} used twice",
                            grant=grant.name)
            seen.add(grant.name)
            provider = by_name.get(grant.provider)
            if provider is None:
                raise _fail(
                    svc.name,
                    f"grant {grant.name!r} names unknown provider "
                    f"{grant.provider!r}",
                    grant=grant.name, provider=grant.provider,
                )
            if grant.cap not in provider.exports:
                raise _fail(
                    svc.name,
                    f"grant {grant.name!r}: provider {grant.provider!r} "
                    f"does not export {grant.cap!r}",
                    grant=grant.name, provider=grant.provider,
                    cap=grant.cap,
                )
        for section in svc.inputs:
            if section in SECTIONS:
                continue
            anchor = section.removeprefix(ANCHOR_PREFIX)
            if section.startswith(ANCHOR_PREFIX) and anchor in anchors:
                continue
            raise _fail(svc.name, f"unknown input section {section!r}",
                        input=section)
        for port in svc.listen:
            if not 0 < port < 65536:
                raise _fail(svc.name, f"bad listen port {port}", port=port)
        if svc.listen and not svc.has_network:
            raise _fail(svc.name, "listens without a network grant")
        for device in svc.devices:
            if not _DEVICE.match(device):
                raise _fail(svc.name, f"bad device name {device!r}",
                            device=device)
            if svc.devices.count(device) > 1:
                raise _fail(svc.name, f"device {device!r} named twice",
                            device=device)
            holder = holders.setdefault(device, svc.name)
            if holder != svc.name:
                raise _fail(svc.name,
                            f"device {device!r} is already granted to "
                            f"{holder!r}", device=device, holder=holder)
    return _start_order(by_name)


def _start_order(by_name: dict[str, Service]) -> tuple[Service, ...]:
    """Depth-first topological order; a back edge is a cycle."""
    order: list[Service] = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join((*path[path.index(name):], name))
            raise _fail(name, f"dependency cycle {cycle}", cycle=cycle)
        state[name] = 1
        for grant in by_name[name].grants:
            visit(grant.provider, (*path, name))
        state[name] = 2
        order.append(by_name[name])

    for name in by_name:
        visit(name, ())
    return tuple(order)
