"""capos-init: verify the boot manifest, then start and wire the services.

Console protocol (one line each, read by the harness on the serial port):

- ``CAPOS-STAGE <name> t=<seconds>``: a boot stage finished
  (``services-forked isolated=yes`` under ``--isolate``; ``started
  <service>`` as each service's start returns);
- ``CAPOS-FATAL <reason>: <detail>``: the boot stopped; nothing runs;
- ``CAPOS-READY services=<a,b,...> t=<seconds>``: every service is up
  (then the kernel's ``uptime``, the CPU's ``idle`` seconds since boot
  and memory figures);
- ``CAPOS-EXIT <service> status=<n>``: a service process ended;
- ``CAPOS-MEM peak_kb=<n> used_kb=<n>``: the services' memory cgroup
  peak grew by a MiB or more since the last such line (``used_kb`` is
  the guest's MemTotal - MemAvailable at that moment).

Exit status: 0 after an orderly shutdown, 3 when the manifest is refused,
4 when the service graph cannot be started, 2 on usage errors.
"""

from __future__ import annotations

import gc

if __name__ == "__main__":
    # capos-init imports every service's modules once and forks the
    # services from itself. Collections during those imports find
    # little garbage (a few hundred objects) and cost about 8% of the
    # import time under TCG. spawn(prefork=True) freezes what the
    # imports made; from then on every process's collections are made
    # by its event loop (services._runtime.loop.run).
    gc.disable()
    # Keep Debian's OpenSSL out of that import set (see the module).
    from services.init import prefork
    prefork.hold()

import argparse
import asyncio
import ctypes
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from services._runtime import loop
from services._runtime.clock import SystemClock
from services.init import system

EXIT_MANIFEST = 3
EXIT_BOOT = 4
_T0 = time.monotonic()


def say(line: str) -> None:
    print(line, flush=True)


def uptime(field: int = 0) -> str:
    """The kernel's uptime, so stage times line up with /init's; with
    ``field=1``, the seconds the CPU has been idle since boot."""
    try:
        return Path("/proc/uptime").read_text().split()[field]
    except (OSError, IndexError):
        return "?"


def stage(name: str) -> None:
    say(f"CAPOS-STAGE {name} t={time.monotonic() - _T0:.3f} "
        f"uptime={uptime()}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="capos-init",
        description="Verify the signed boot manifest, then start each "
        "service it names as its own process with exactly the "
        "capabilities its entry grants.",
    )
    p.add_argument("--manifest", required=True, type=Path,
                   help="signed manifest (SignedManifest message)")
    p.add_argument("--pubkey", required=True, action="append", type=Path,
                   help="trusted Ed25519 verifying key (repeatable)")
    p.add_argument("--threshold", type=int, default=1,
                   help="distinct trusted signatures required (default 1)")
    p.add_argument("--state", type=Path, default=None,
                   help="directory keeping the installed manifest version "
                   "(default: DATA/init when --data is given)")
    p.add_argument("--data", type=Path, default=None,
                   help="the data disk's mount point: init keeps its state "
                   "there and gives each service whose entry says "
                   "\"state\" a private directory under DATA/services")
    p.add_argument("--volatile", type=Path, default=None,
                   help="without --data, make the stateful services' "
                   "directories under VOLATILE/services instead (a RAM "
                   "file system: kept for this boot only)")
    p.add_argument("--setting", action="append", default=[],
                   metavar="KEY=VALUE",
                   help="local setting handed to every service")
    p.add_argument("--isolate", action="store_true",
                   help="one uid per service, no supplementary groups, "
                   "an empty network namespace without a network grant "
                   "(needs root)")
    return p.parse_args(argv)


def installed_version(state: Path | None) -> int:
    if state is None:
        return 0
    try:
        return int((state / "installed-version").read_text().strip())
    except FileNotFoundError:
        return 0


def record_version(state: Path | None, version: int) -> None:
    """Write-then-rename, so a power cut leaves the old value or the new."""
    if state is None:
        return
    state.mkdir(parents=True, exist_ok=True)
    tmp = state / "installed-version.tmp"
    with open(tmp, "w") as f:
        f.write(f"{version}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, state / "installed-version")
    # The rename is durable only once the directory is: without this, a
    # power cut right after boot could bring the old version back.
    fd = os.open(state, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def verify_manifest(args: argparse.Namespace) -> Any:
    from bootmanifest import sign

    keys = [sign.load_public(p.read_bytes()) for p in args.pubkey]
    return sign.verify(
        args.manifest.read_bytes(),
        trusted_pubkeys=keys,
        threshold=args.threshold,
        installed_version=installed_version(args.state),
        now=SystemClock().now(),
    )


_CLONE_NEWNET = 0x40000000
_PR_SET_NO_NEW_PRIVS = 38
#: libc's unshare and prctl, bound here, before the fork: binding them
#: (a CDLL and its function-pointer class) in each of the nine
#: children took 0.4M instructions and the pages it wrote, each time.
_LIBC = ctypes.CDLL(None, use_errno=True)
_UNSHARE = _LIBC.unshare
_PRCTL = _LIBC.prctl


def isolate(index: int, spec: system.ServiceSpec) -> None:
    """Drop what Linux can take away from a service process (runs in
    the forked child, as root, before the service starts).

    - no network grant: a fresh, empty network namespace (not even
      loopback is up), so no connect or bind reaches anything;
    - its own uid and gid (:func:`system.service_uid`), no supplementary
      groups: it cannot signal or trace another service, nor open
      another's 0700 state directory;
    - no new privileges through exec, and a 077 umask for what it makes.
    """
    if not spec.has_network and _UNSHARE(_CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
    uid = system.service_uid(index)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if _PRCTL(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(NO_NEW_PRIVS): {os.strerror(err)}")
    os.umask(0o077)


async def supervise(procs: list[system.Process], manifest: Any,
                    settings: dict[str, str], state: Path | None,
                    state_dirs: dict[str, str]) -> int:
    exports, keep = await system.wire(
        manifest, procs, settings, state_dirs,
        started=lambda name: stage(f"started {name}"))
    del exports
    record_version(state, manifest.version)
    names = ",".join(p.spec.name for p in procs)
    peak = memory_peak_kb()
    say(f"CAPOS-READY services={names} t={time.monotonic() - _T0:.3f} "
        f"uptime={uptime()} idle={uptime(1)} "
        f"mem_used_kb={memory_used_kb()} "
        f"mem_peak_kb={peak}")
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    alive = {p.pid: p for p in procs}
    while alive and not stopping.is_set():
        for pid in list(alive):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                proc = alive.pop(pid)
                code = os.waitstatus_to_exitcode(status)
                say(f"CAPOS-EXIT {proc.spec.name} status={code}")
        now_peak = memory_peak_kb()
        if now_peak >= peak + 1024:
            peak = now_peak
            say(f"CAPOS-MEM peak_kb={peak} used_kb={memory_used_kb()}")
        try:
            await asyncio.wait_for(stopping.wait(), 0.5)
        except TimeoutError:
            pass
    del keep
    return 0


def memory_used_kb() -> int:
    """MemTotal - MemAvailable, from /proc/meminfo (0 if unreadable)."""
    try:
        info = dict(
            (line.split(":")[0], int(line.split()[1]))
            for line in Path("/proc/meminfo").read_text().splitlines()
        )
        return info["MemTotal"] - info["MemAvailable"]
    except (OSError, KeyError, ValueError, IndexError):
        return 0


#: The memory cgroup the guest's /init puts capos-init (and so every
#: service it forks) in.
MEMORY_CGROUP = Path("/sys/fs/cgroup/capos")


def memory_peak_kb(cgroup: Path = MEMORY_CGROUP) -> int:
    """The cgroup's ``memory.peak`` in KiB (0 where there is none)."""
    try:
        return int((cgroup / "memory.peak").read_text()) // 1024
    except (OSError, ValueError):
        return 0


def port_map(text: str) -> dict[int, int]:
    """``CAPOS_LISTEN_MAP``: ``80=0,443=8443`` moves manifest ports (for
    running capos-init on a host beside other servers; 0 = any)."""
    out: dict[int, int] = {}
    for item in filter(None, text.split(",")):
        port, _, to = item.partition("=")
        out[int(port)] = int(to)
    return out


def device_map(text: str) -> dict[str, str]:
    """``CAPOS_DEVICE_MAP``: ``capos.audit=/path,...`` puts a
    virtio-serial port name on another file (for running capos-init on a
    host, which has no such ports)."""
    out: dict[str, str] = {}
    for item in filter(None, text.split(",")):
        name, _, path = item.partition("=")
        out[name] = path
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = {}
    for item in args.setting:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"capos-init: bad --setting {item!r}", file=sys.stderr)
            return 2
        settings[key] = value
    from services._runtime import settings as known

    for key in known.unknown(list(settings)):
        # Not fatal: the boot goes on, and the console says it.
        print(f"capos-init: setting {key!r} is read by no service "
              f"(known: {known.known_list()})", file=sys.stderr, flush=True)
    if args.state is None and args.data is not None:
        args.state = args.data / "init"
    try:
        manifest = verify_manifest(args)
    except Exception as err:
        reason = getattr(err, "reason", type(err).__name__)
        detail = getattr(err, "detail", str(err))
        say(f"CAPOS-FATAL {reason}: {detail}")
        return EXIT_MANIFEST
    stage(f"manifest-verified version={manifest.version}")
    procs: list[system.Process] = []
    try:
        order = system.start_order(
            system.specs_from_manifest(manifest),
            [a.name for a in manifest.extraAnchors])
        procs = system.spawn(
            order, isolate if args.isolate else None,
            bind=os.environ.get("CAPOS_BIND", "0.0.0.0"),
            port_map=port_map(os.environ.get("CAPOS_LISTEN_MAP", "")),
            device_map=device_map(os.environ.get("CAPOS_DEVICE_MAP", "")),
            prefork=True,
        )
        stage("services-forked isolated="
              + ("yes" if args.isolate else "no"))
        state_dirs = system.state_dirs(order, args.data, args.isolate,
                                       args.volatile)
        code = loop.run(
            supervise(procs, manifest, settings, args.state, state_dirs))
    except system.BootError as err:
        say(f"CAPOS-FATAL {err.reason}: {err.detail}")
        return EXIT_BOOT
    finally:
        system.stop(procs)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
