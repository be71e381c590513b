"""A test service that tries to reach what it may not have been granted.

When started it looks around from inside its process and reports what
it saw as one audit record (operation ``probe``, the observations as
JSON in ``detail``) through the ``AuditLog`` capability it is granted:

- ``uid``, ``gid``: its real, effective and saved ids; ``groups``;
- ``connect``: the errno of a TCP connect to 127.0.0.1 on the port of
  the ``probePort`` setting (0: connected);
- ``dirs``: per service named in ``probeDirs``, the errno of listing
  ``<probeData>/services/<name>`` (0: listed);
- ``ownDir``: the errno of writing a file in its own ``stateDir``;
- ``kill``: the errno of ``kill(pid, 0)`` on capos-init (``init``) and
  on every other service it started (by that service's uid);
- ``fds``: where each of its open file descriptors points;
- ``gc``: whether its cyclic collector runs, and how many objects sit
  frozen in the permanent generation (capos-init's imports).

Settings are handed to every service; that is fine for a test, and is
why real services take no paths from them.
"""

from __future__ import annotations

# Imported before the fork, as root: on a host whose interpreter lives
# in a directory only root may read (/root/.pyenv), a service uid
# cannot import it lazily (getaddrinfo needs the idna codec).
import encodings.idna  # noqa: F401
import gc
import json
import os
import socket
from pathlib import Path
from typing import Any

from services._runtime.audit import AuditEvent
from services._runtime.host import ServiceContext

#: Service uids are 61000 + start position (services.init.system).
_SERVICE_UIDS = range(61000, 62000)


def _errno_of(action: Any) -> int:
    try:
        action()
    except OSError as err:
        return err.errno or -1
    return 0


def _connect(port: int) -> int:
    def go() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass

    return _errno_of(go)


def _write_in(path: Path) -> None:
    (path / "probe.txt").write_text("mine\n")


def _service_pids() -> dict[int, int]:
    """pid -> real uid of every other service of this capos-init."""
    out: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            status = dict(line.split(":", 1) for line in
                          (entry / "status").read_text().splitlines())
        except (OSError, ValueError):
            continue
        uid = int(status.get("Uid", "-1").split()[0])
        ppid = int(status.get("PPid", "0").strip())
        if uid in _SERVICE_UIDS and ppid == os.getppid():
            out[int(entry.name)] = uid
    return out


def _fds() -> list[str]:
    out = []
    for fd in sorted(os.listdir("/proc/self/fd"), key=int):
        try:
            out.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue  # the listing's own descriptor, closed by now
    return out


def observe(ctx: ServiceContext) -> dict[str, Any]:
    data = Path(ctx.settings["probeData"])
    state = ctx.inputs.get("stateDir")
    return {
        "uid": list(os.getresuid()),
        "gid": list(os.getresgid()),
        "groups": os.getgroups(),
        "connect": _connect(int(ctx.settings["probePort"])),
        "dirs": {
            name: _errno_of(lambda n=name: os.listdir(data / "services" / n))
            for name in ctx.settings["probeDirs"].split(",")
        },
        "ownDir": (_errno_of(lambda: _write_in(Path(state.decode())))
                   if state is not None else None),
        "kill": {
            "init": _errno_of(lambda: os.kill(os.getppid(), 0)),
            **{str(uid): _errno_of(lambda p=pid: os.kill(p, 0))
               for pid, uid in _service_pids().items()},
        },
        "fds": _fds(),
        "gc": {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()},
    }


async def build(ctx: ServiceContext) -> dict[str, Any]:
    ctx.audit.emit(AuditEvent(
        at=ctx.clock.now(), service=ctx.name, capability="probe",
        operation="probe", outcome="ok",
        detail=json.dumps(observe(ctx), sort_keys=True),
    ))
    flush = getattr(ctx.audit, "flush", None)
    if flush is not None:
        await flush()
    return {}
