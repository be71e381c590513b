"""QEMU harness: boot the capOS image under TCG, driven through QMP.

``python -m tools.vm boot --image build/image [--keep] [--json]
[--guest smoke]``

QEMU is controlled only through QMP (qemu.qmp's QMPClient) and the
serial console, which QEMU writes to a log file the harness tails.
Readiness is the guest's ``CAPOS-READY`` console line, waited for with a
deadline; never a sleep or a port probe (DESIGN 4a). Networking is user
mode with ``restrict=on`` and forwards bound to 127.0.0.1: netdev ``n0``
(the guest's eth0, 10.0.2.0/24) always, and ``n1`` (eth1, 10.0.3.0/24)
when ``aux_guestfwd`` asks for a second link, so a fault on one
(:meth:`VM.set_link`) leaves the other up. ``pcap`` records n0's
traffic with QEMU's ``filter-dump``; ``rtc_base`` sets the guest clock.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from qemu.qmp import ConnectError, QMPClient

from services._runtime import settings as guest_settings
from tools.proc import die_with_parent

REPO = Path(__file__).resolve().parent.parent
LOGS = REPO / "logs"
READY = "CAPOS-READY"
FATAL = ("Initramfs unpacking failed", "Kernel panic")
QBOOT = Path("/usr/share/qemu/qboot.rom")
PROGRESS = ("capos-boot:", "CAPOS-STAGE", "CAPOS-READY", "CAPOS-FATAL",
            "CAPOS-GATEWAY", "CAPOS-EXIT")
#: Guest RAM. Nine service processes and the in-RAM initramfs use about
#: 190 MiB at ready; 384 leaves room for load and rotation.
GUEST_MB = 384
BOOT_TIMEOUT = 90.0  # about 3x a TCG boot (DESIGN 4a)
#: The guest CPU: TCG's ``max`` without the features TCG emulates slowly.
#: With ERMS/FSRM, the kernel's and glibc's memcpy use ``rep movsb``,
#: which TCG runs one element at a time; with AVX/AVX2, glibc picks
#: vector string functions TCG implements through helpers. Measured
#: here (``make bench``'s boot figure, same image): the kernel reaches
#: /init about 0.7 s sooner and the services are ready about 1.5 s
#: sooner without them. Everything the image runs is built for the
#: x86-64 baseline and picks its code paths at run time.
CPU = "max,-erms,-fsrm,-avx,-avx2"
#: The machine type. On ``q35`` the virtio-pci devices sit on PCI
#: Express and take MSI-X; on ``pc`` each device's probe first enables
#: its legacy interrupt through an ACPI link device (``LNKB: Enabled at
#: IRQ 10``), about 0.1 s each under TCG. Measured here, same image,
#: alternated: loading the virtio modules takes 0.13-0.16 s on q35
#: against 0.44-0.53 s on pc, and the services are ready about 0.5 s
#: sooner (docs/DESIGN.md 8).
MACHINE = "q35"
#: capos-init's last words when it stops the boot: ``CAPOS-FATAL
#: <reason>: <detail>`` (services/init/__main__.py).
GUEST_FATAL = "CAPOS-FATAL"
BUILD_IMAGE = (".venv/bin/python -m image.build --out build/image "
               "--manifest build/manifest.bin --pubkey build/manifest.pub")


def missing_image(image: Path) -> str | None:
    """What of a boot image is missing, with how to build it; or None."""
    for f in ("vmlinux", "initramfs.cpio.zst"):
        if not (image / f).is_file():
            return (f"missing {image / f}; build it with `{BUILD_IMAGE}` "
                    "(or `make image`)")
    return None


class VMError(Exception):
    """The VM failed to boot or misbehaved; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: Tries at a forwarded port another process took first.
PORT_ATTEMPTS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class VM:
    """Context manager: a booted guest with ``port`` forwarded to :443."""

    def __init__(self, image: Path | str = REPO / "build/image",
                 memory_mb: int = GUEST_MB, guest: str | None = None,
                 timeout: float = BOOT_TIMEOUT, keep_log: bool = False,
                 append: str = "", machine: str = MACHINE,
                 hostfwd: list[tuple[int, int]] | None = None,
                 guestfwd: list[tuple[str, int, int]] | None = None,
                 console_dir: Path | None = None,
                 ready: str = READY, smp: int = 1,
                 data_disk: Path | None = None,
                 pcap: Path | None = None, rtc_base: str | None = None,
                 aux_guestfwd: list[tuple[str, int, int]] | None = None,
                 ) -> None:
        """:param hostfwd: extra ``(host port, guest port)`` forwards,
            bound to 127.0.0.1 (443 always gets a free port: ``port``).
        :param guestfwd: ``(guest ip, guest port, host port)``: the guest
            reaches 127.0.0.1:<host port> at <guest ip>:<guest port>.
        :param console_dir: where kept console logs go (default logs/).
        :param ready: console regex that means the guest is up.
        :param data_disk: a raw ext4 image (see :func:`make_data_disk`)
            attached as virtio-blk ``/dev/vda``, the guest's ``/data``.
        :param pcap: write n0's packets there (QEMU ``filter-dump``, pcap
            format), for scapy.
        :param rtc_base: QEMU ``-rtc base=`` (``2026-12-04T10:00:00``,
            UTC): the guest's clock starts there.
        :param aux_guestfwd: ``guestfwd`` entries (as ``guestfwd``, with
            addresses in 10.0.3.0/24) on a second user netdev ``n1``,
            the guest's eth1.
        """
        self.image = Path(image)
        self.memory_mb = memory_mb
        self.guest = guest
        self.timeout = timeout
        self.keep_log = keep_log
        self.extra_append = append
        self.machine = machine
        self.hostfwd = list(hostfwd or [])
        self.guestfwd = list(guestfwd or [])
        self.console_dir = console_dir or LOGS
        self.ready = ready
        self.smp = smp
        self.data_disk = Path(data_disk) if data_disk else None
        self.pcap = Path(pcap) if pcap else None
        self.rtc_base = rtc_base
        self.aux_guestfwd = list(aux_guestfwd or [])
        #: Called with each guest progress line (boot stages, readiness,
        #: fatal errors) as :meth:`wait_for` reads it; ``None``: quiet.
        self.progress: Callable[[str], None] | None = None
        self._progress_lines = 0  # console lines already passed to it
        self.port = 0
        self.boot_seconds = 0.0
        self.ready_line = ""
        self._tmp = Path(tempfile.mkdtemp(prefix="capos-vm-"))
        self.console_log = self._tmp / "console.log"
        #: Audit records the guest writes on its ``capos.audit``
        #: virtio-serial port, one JSON line each.
        self.audit_log = self._tmp / "audit.jsonl"
        self._qmp_sock = self._tmp / "qmp.sock"
        #: Where :meth:`stop` kept the console log and the audit records
        #: (``console_dir``), when it kept them.
        self.kept_log: Path | None = None
        self.kept_audit: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._loop = asyncio.new_event_loop()
        self._qmp: QMPClient | None = None
        self._t0 = 0.0

    # -- lifecycle -------------------------------------------------------
    def _netdev(self) -> str:
        parts = ["user", "id=n0", "restrict=on",
                 f"hostfwd=tcp:127.0.0.1:{self.port}-:443"]
        parts += [f"hostfwd=tcp:127.0.0.1:{h}-:{g}" for h, g in self.hostfwd]
        parts += [f"guestfwd=tcp:{ip}:{g}-tcp:127.0.0.1:{h}"
                  for ip, g, h in self.guestfwd]
        return ",".join(parts)

    def _aux_net(self) -> list[str]:
        if not self.aux_guestfwd:
            return []
        parts = ["user", "id=n1", "restrict=on", "net=10.0.3.0/24"]
        parts += [f"guestfwd=tcp:{ip}:{g}-tcp:127.0.0.1:{h}"
                  for ip, g, h in self.aux_guestfwd]
        return ["-netdev", ",".join(parts),
                "-device", "virtio-net-pci,netdev=n1,romfile="]

    def _extras(self) -> list[str]:
        out: list[str] = []
        if self.pcap is not None:
            out += ["-object",
                    f"filter-dump,id=f0,netdev=n0,file={self.pcap}"]
        if self.rtc_base is not None:
            out += ["-rtc", f"base={self.rtc_base}"]
        return out

    def _disk(self) -> list[str]:
        if self.data_disk is None:
            return []
        return ["-drive", f"file={self.data_disk},if=none,id=data0,"
                "format=raw,cache=writeback",
                "-device", "virtio-blk-pci,drive=data0"]

    def command(self) -> list[str]:
        # no_timer_check: under TCG on a loaded host the kernel's boot-time
        # IO-APIC timer check can miss ticks and panic ("IO-APIC + timer
        # doesn't work!", seen here); the check proves nothing in a VM.
        # cryptomgr.notests: the kernel's crypto self-tests take about
        # 0.25 s under TCG, and no guest code uses the kernel's crypto
        # API (TLS, X.509 and signatures run in OpenSSL and pyca in user
        # space).
        append = ("console=ttyS0 quiet panic=-1 rdinit=/init "
                  "no_timer_check cryptomgr.notests")
        if self.guest:
            append += f" capos.guest={self.guest}"
        if self.extra_append:
            append += " " + self.extra_append
        # qboot enters the PVH kernel faster than SeaBIOS (about 0.2 s
        # under TCG, measured here); SeaBIOS remains where it is absent.
        bios = (["-bios", str(QBOOT)] if QBOOT.exists() else [])
        return [
            "qemu-system-x86_64", "-M", self.machine, "-accel", "tcg", *bios,
            "-cpu", CPU, "-m", str(self.memory_mb), "-smp", str(self.smp),
            "-display", "none", "-nodefaults", "-no-reboot",
            "-kernel", str(self.image / "vmlinux"),
            "-initrd", str(self.image / "initramfs.cpio.zst"),
            "-append", append,
            "-chardev", f"file,id=con0,path={self.console_log}",
            "-serial", "chardev:con0",
            "-device", "virtio-rng-pci",
            "-device", "virtio-serial-pci,id=vser0",
            "-chardev", f"file,id=audit0,path={self.audit_log}",
            "-device", "virtserialport,bus=vser0.0,chardev=audit0,"
                       "name=capos.audit",
            *self._disk(),
            "-netdev", self._netdev(),
            "-device", "virtio-net-pci,netdev=n0,romfile=",
            *self._aux_net(), *self._extras(),
            "-qmp", f"unix:{self._qmp_sock},server=on,wait=off",
        ]

    def start(self) -> VM:
        missing = missing_image(self.image)
        if missing is not None:
            self.stop()
            raise VMError(missing)
        self.console_log.touch()
        try:
            self._launch()
            self.ready_line = self.wait_for(self.ready, self.timeout)
            self.boot_seconds = time.monotonic() - self._t0
        except BaseException:
            self.stop(failed=True)
            raise
        return self

    def _launch(self) -> None:
        """Start QEMU and connect to its QMP socket. The forwarded port
        was free a moment ago; another process may take it before QEMU
        binds it, and QEMU then exits at once, having run nothing: it
        is started again on another port."""
        for attempt in range(PORT_ATTEMPTS):
            self.port = _free_port()
            self._t0 = time.monotonic()
            with open(self._tmp / "qemu.err", "wb") as err:
                self._proc = subprocess.Popen(
                    self.command(), stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=err,
                    preexec_fn=die_with_parent)
            try:
                self._loop.run_until_complete(self._connect())
                return
            except VMError as failed:
                taken = (f"rule 'tcp:127.0.0.1:{self.port}-:443'"
                         in str(failed))
                if not taken or attempt == PORT_ATTEMPTS - 1:
                    raise
                self._proc.wait()
                self._qmp_sock.unlink(missing_ok=True)

    async def _connect(self) -> None:
        deadline = time.monotonic() + 10
        while not self._qmp_sock.exists():
            self._check_alive()
            if time.monotonic() > deadline:
                raise VMError("QMP socket never appeared")
            await asyncio.sleep(0.02)
        # QEMU binds the socket before it listens: a connect in between
        # is refused (seen once in ``make bench``), so try until the
        # deadline while QEMU lives.
        while True:
            qmp = QMPClient("capos-vm")
            try:
                await qmp.connect(str(self._qmp_sock))
            except ConnectError as err:
                self._check_alive()
                if time.monotonic() > deadline:
                    raise VMError(f"QMP never answered: {err}") from err
                await asyncio.sleep(0.02)
                continue
            self._qmp = qmp
            return

    def qmp(self, cmd: str, **args: object) -> object:
        """Run one QMP command and return its result."""
        assert self._qmp is not None
        return self._loop.run_until_complete(
            self._qmp.execute(cmd, args or None))

    def translation(self) -> dict[str, int]:
        """QEMU's TCG translation counters so far (HMP ``info jit``):
        ``blocks`` translated, ``invalidated`` and ``code_bytes`` of
        host code generated. Under TCG each guest basic block is
        translated the first time it runs, and that costs far more than
        running it, so the count tracks how much distinct code a boot
        runs; unlike seconds, it hardly moves with the host's load."""
        text = str(self.qmp("human-monitor-command",
                            **{"command-line": "info jit"}))
        out = {}
        for key, label in (("blocks", "TB count"),
                           ("invalidated", "TB invalidate count"),
                           ("code_bytes", "gen code size")):
            m = re.search(rf"^{label}\s+(\d+)", text, re.M)
            if m is None:
                raise VMError(f"info jit has no {label!r}: {text[:200]}")
            out[key] = int(m.group(1))
        return out

    def set_link(self, up: bool, name: str = "n0") -> None:
        """QMP ``set_link``: take a netdev's link (and its NIC's) down or
        bring it back; the guest sees the carrier change."""
        self.qmp("set_link", name=name, up=up)

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            err = (self._tmp / "qemu.err").read_text(errors="replace")
            said = err.strip()[-500:]
            raise VMError(f"qemu exited rc={self._proc.returncode}"
                          + (f": {said}" if said else ""))

    def audit_records(self) -> list[dict[str, object]]:
        """Every audit record the guest has sent so far."""
        if not self.audit_log.exists():
            return []
        return [json.loads(x) for x in
                self.audit_log.read_text().splitlines() if x.strip()]

    def console(self) -> str:
        return self.console_log.read_text(errors="replace")

    def memory_kb(self) -> dict[str, int]:
        """What capos-init last said of memory: ``peak`` (the services'
        cgroup ``memory.peak``) and ``used`` (MemTotal - MemAvailable),
        in KiB; 0 where the guest has not said."""
        peak = used = 0
        for line in self.console().splitlines():
            m = re.search(r"(?:mem_)?peak_kb=(\d+)", line)
            if m and line.startswith(("CAPOS-READY", "CAPOS-MEM")):
                peak = max(peak, int(m.group(1)))
                u = re.search(r"used_kb=(\d+)", line)
                used = int(u.group(1)) if u else used
        return {"peak": peak, "used": used}

    def wait_for(self, pattern: str, timeout: float, skip: int = 0) -> str:
        """Wait for a console line matching ``pattern`` (regex); with
        ``skip``, for the one after the first ``skip`` such lines.

        :raises VMError: on a line of ``FATAL``, on a ``CAPOS-FATAL``
            line not seen by an earlier wait that ``pattern`` does not
            match (its text is the reason), when QEMU exits, or at the
            deadline.
        """
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.console_log.open("r", errors="replace") as f:
            buf = ""
            lineno = 0
            drained = False  # read once more after QEMU exited
            while True:
                chunk = f.read()
                if chunk:
                    buf += chunk
                    *lines, buf = buf.split("\n")
                    for line in lines:
                        lineno += 1
                        new = lineno > self._progress_lines
                        if new:
                            self._progress_lines = lineno
                            if (self.progress is not None
                                    and line.startswith(PROGRESS)
                                    and "meminfo" not in line):
                                self.progress(line.strip())
                        for bad in FATAL:
                            if bad in line:
                                raise VMError(f"guest: {line.strip()}")
                        if rx.search(line):
                            if skip == 0:
                                return line.strip()
                            skip -= 1
                        elif new and line.startswith(GUEST_FATAL):
                            raise VMError(f"guest: {line.strip()}")
                    continue
                if (not drained and self._proc is not None
                        and self._proc.poll() is not None):
                    # The guest's last lines may have landed after the
                    # read above: read them before blaming the exit.
                    drained = True
                    continue
                self._check_alive()
                if time.monotonic() > deadline:
                    raise VMError(f"no {pattern!r} on the console after "
                                  f"{timeout:.0f}s")
                time.sleep(0.02)

    def stop(self, failed: bool = False) -> None:
        """QMP quit, then kill if QEMU lingers. Keeps the log on failure."""
        if self._qmp is not None:
            try:
                self._loop.run_until_complete(
                    asyncio.wait_for(self._qmp.execute("quit"), 5))
            except Exception:
                pass
            try:
                self._loop.run_until_complete(self._qmp.disconnect())
            except Exception:
                pass
            self._qmp = None
        if self._proc is not None:
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if (failed or self.keep_log) and self._tmp.exists():
            # Only the first stop has the files to keep: a second one
            # (start failed, then the caller's own stop) must not forget
            # where they went.
            self.kept_log = self._keep(self.console_log, "console", "log")
            self.kept_audit = self._keep(self.audit_log, "audit", "jsonl")
        shutil.rmtree(self._tmp, ignore_errors=True)
        if not self._loop.is_closed():
            self._loop.close()

    def _keep(self, src: Path, prefix: str, suffix: str) -> Path | None:
        """Copy a per-VM file into ``console_dir`` before the temporary
        directory goes; returns where it went."""
        if not src.exists():
            return None
        self.console_dir.mkdir(parents=True, exist_ok=True)
        dest = self.console_dir / (
            f"{prefix}-{time.strftime('%Y%m%dT%H%M%S')}-"
            f"{os.getpid()}.{suffix}")
        shutil.copyfile(src, dest)
        return dest

    def __enter__(self) -> VM:
        try:
            return self.start()
        except VMError as e:
            path = self.kept_log
            if path is None:  # it never booted: no console to show
                raise
            tail = path.read_text(errors="replace")[-2000:]
            raise VMError(f"{e.reason}; console log {path}; tail:\n"
                          f"{tail}") from e

    def __exit__(self, et: type[BaseException] | None,
                 ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop(failed=et is not None)


def make_data_disk(path: Path, size_mb: int = 64,
                   files: dict[str, bytes] | None = None) -> Path:
    """A fresh ext4 image for the guest's ``/data``, optionally holding
    ``files`` (relative path -> bytes), made with ``mkfs.ext4 -d``."""
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="capos-disk-") as tmp:
        for rel, data in (files or {}).items():
            dest = Path(tmp) / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        with path.open("wb") as f:
            f.truncate(size_mb << 20)
        proc = subprocess.run(
            ["mkfs.ext4", "-q", "-F", "-L", "capos-data", "-d", tmp,
             "-E", "root_owner=0:0", str(path)],
            capture_output=True, text=True)
        if proc.returncode != 0:
            raise VMError(f"mkfs.ext4 {path}: {proc.stderr.strip()}")
    return path


def debugfs(disk: Path, request: str) -> str:
    """Run one ``debugfs`` request on a copy of a data disk whose journal
    was replayed first (``e2fsck -p``, as the guest's next mount would):
    the guest may have been stopped with committed but unreplayed
    journal blocks, which debugfs alone does not read."""
    with tempfile.TemporaryDirectory(prefix="capos-disk-") as tmp:
        copy = Path(tmp) / "data.img"
        shutil.copyfile(disk, copy)
        fsck = subprocess.run(["e2fsck", "-p", str(copy)],
                              capture_output=True, text=True)
        if fsck.returncode not in (0, 1):
            raise VMError(f"e2fsck {disk}: rc={fsck.returncode} "
                          f"{(fsck.stdout + fsck.stderr).strip()[-300:]}")
        proc = subprocess.run(["debugfs", "-R", request, str(copy)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise VMError(f"debugfs {request!r}: {proc.stderr.strip()}")
        return proc.stdout if "not found" not in proc.stderr else ""


def read_data_file(disk: Path, rel: str) -> bytes | None:
    """One file from a data disk image; ``None`` if it is not there."""
    out = debugfs(disk, f"cat /{rel}")
    return out.encode() if out else None


def tls_handshake(port: int) -> tuple[str, bytes]:
    """One TLS handshake to 127.0.0.1:port; returns (version, cert DER).

    The certificate is not verified here: callers pin it themselves.
    """
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with ctx.wrap_socket(raw) as s:
            return str(s.version()), s.getpeercert(binary_form=True) or b""


#: Without a directory URL of the user's, the guest's ACME client is
#: pointed at a guest-local port where nothing listens: the services come
#: up, the gateway reports its issuance failed, and no traffic leaves.
NO_ACME = "acmeDirectory=https://127.0.0.1:9/dir"


def slowest_imports(console: list[str], top: int = 10,
                    ) -> list[dict[str, object]]:
    """The ``top`` Python imports by their own time, from the console
    lines ``-X importtime`` writes (``capos.debug=importtime``)."""
    found = []
    for ln in console:
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| \s*(\S+)", ln)
        if m:
            found.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    found.sort(reverse=True)
    return [{"module": name, "self_ms": round(own / 1000, 1),
             "cumulative_ms": round(cumulative / 1000, 1)}
            for own, cumulative, name in found[:top]]


def _boot(args: argparse.Namespace) -> int:
    settings = list(args.setting)
    if args.guest != "smoke" and not any(
            s.startswith("acmeDirectory=") for s in settings):
        settings.append(NO_ACME)
    missing = missing_image(args.image)
    if missing is not None:  # before a data disk is made for nothing
        raise VMError(missing)
    disk = None
    if args.data_disk is not None:
        disk = (args.data_disk if args.data_disk.exists()
                else make_data_disk(args.data_disk))
    vm = VM(args.image, guest=args.guest, keep_log=args.keep,
            append=" ".join([f"capos.setting={s}" for s in settings]
                            + args.kernel_arg),
            data_disk=disk)
    blocks: dict[str, int] = {}

    def progress(line: str) -> None:
        if args.translation:
            blocks[line] = vm.translation()["blocks"]
        if not args.json:
            tail = (f"  [{blocks[line]} blocks]" if args.translation
                    else "")
            print(f"  guest {line}{tail}", flush=True)

    vm.progress = progress
    with vm:
        info: dict[str, object] = {
            "boot_seconds": round(vm.boot_seconds, 2),
            "ready": vm.ready_line, "port": vm.port,
            "memory": vm.qmp("query-memory-size-summary"),
            "memory_kb": vm.memory_kb(),
        }
        if args.guest == "smoke":
            version, _ = tls_handshake(vm.port)
            info["first_tls_seconds"] = round(time.monotonic() - vm._t0, 2)
            info["tls_version"] = version
        console = vm.console().splitlines()
        info["guest_timings"] = [ln for ln in console
                                 if ln.startswith("capos-boot:")]
        stages = [ln for ln in console if ln.startswith("CAPOS-STAGE ")]
        info["stages"] = stages
        if args.translation:
            info["translation"] = vm.translation()
            info["translation_blocks_by_line"] = blocks
        slowest = slowest_imports(console)
        if slowest:
            info["slowest_imports"] = slowest
        if args.json:
            print(json.dumps(info, indent=1))
        else:
            print(f"ready in {info['boot_seconds']} s: {vm.ready_line}")
            for ln in stages:
                print(f"  {ln}")
            if args.translation:
                t = vm.translation()
                print(f"translated {t['blocks']} blocks by now "
                      f"({t['invalidated']} invalidated, "
                      f"{t['code_bytes'] / 2**20:.1f} MiB host code)")
            for imp in slowest:
                print(f"  import {imp['module']}: {imp['self_ms']} ms "
                      f"(with what it imports {imp['cumulative_ms']} ms)")
            if "tls_version" in info:
                print(f"first TLS handshake ({info['tls_version']}) at "
                      f"{info['first_tls_seconds']} s")
            print(f"https://127.0.0.1:{vm.port}/ -> guest :443")
        if args.keep:
            # The console log QEMU writes is in a temporary directory
            # that goes with the VM; the copy kept under console_dir is
            # made when it stops, and named then.
            try:
                # Inside the try: a Ctrl-C that comes as soon as the line
                # is out, while print still returns, stops the VM too.
                print(f"VM kept running; Ctrl-C stops it and keeps the "
                      f"console log in {vm.console_dir}", file=sys.stderr)
                while True:
                    time.sleep(1)
                    vm._check_alive()
            except KeyboardInterrupt:
                pass
    if vm.kept_log is not None:
        print(f"console log kept: {vm.kept_log}", file=sys.stderr)
    return 0


#: An ext2/3/4 superblock starts 1024 bytes into the device, and its
#: ``s_magic`` (0xEF53, little-endian) is 56 bytes into it.
EXT4_MAGIC_OFFSET = 1024 + 56
EXT4_MAGIC = (0xEF53).to_bytes(2, "little")


def not_ext4(path: Path) -> str | None:
    """Why ``path`` is not an ext4 image the guest can mount, or None."""
    try:
        with path.open("rb") as f:
            f.seek(EXT4_MAGIC_OFFSET)
            magic = f.read(2)
    except OSError as err:
        return f"cannot read it: {err.strerror}"
    if magic != EXT4_MAGIC:
        return (f"not an ext4 image (no superblock magic 0xEF53 at byte "
                f"{EXT4_MAGIC_OFFSET}); give a path that does not exist "
                "to have a fresh one made")
    return None


def _check_boot_args(ap: argparse.ArgumentParser,
                     a: argparse.Namespace) -> None:
    """Refuse bad arguments (exit 2) before QEMU starts."""
    for s in a.setting:
        key, sep, _ = s.partition("=")
        if not sep or not key:
            ap.error(f"--setting {s!r}: expected KEY=VALUE")
        if re.search(r"\s", s):
            ap.error(f"--setting {s!r}: no white space (settings go on "
                     "the kernel command line)")
        if key not in guest_settings.KNOWN:
            ap.error(f"--setting {s!r}: no service reads {key!r} (known: "
                     f"{guest_settings.known_list()})")
    for word in a.kernel_arg:
        if not word or re.search(r"[\s\"]", word):
            ap.error(f"--kernel-arg {word!r}: one word, no white space "
                     "or quotes")
    disk = a.data_disk
    if disk is not None:
        if disk.exists() and not disk.is_file():
            ap.error(f"--data-disk {disk}: not a regular file")
        if disk.exists() and (why := not_ext4(disk)) is not None:
            ap.error(f"--data-disk {disk}: {why}")
        if not disk.exists() and not disk.parent.is_dir():
            ap.error(f"--data-disk {disk}: directory {disk.parent} does "
                     "not exist (a missing disk is made fresh there)")


def main(argv: list[str] | None = None) -> int:
    # Imported here: only the command line needs it, not VM users.
    from tools._cli import pipe_safe

    return pipe_safe(_main)(argv)


def _main(argv: list[str] | None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tools.vm",
        description="Boot the capOS image under TCG, driven through QMP.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser(
        "boot", help="boot the image, wait for CAPOS-READY, report",
        description="Boot the image and wait for the guest's readiness "
        "line. Exit status: 0 ready, 1 the boot failed or the image is "
        "missing (reason, and the kept console log when it booted, "
        "printed), 2 usage error (nothing started). For "
        "ACME issuance and TLS checks use `python -m tools.run` (make "
        "run).")
    b.add_argument("--image", type=Path, default=REPO / "build/image",
                   help="directory holding vmlinux and initramfs.cpio.zst "
                   "(default: build/image)")
    b.add_argument("--keep", action="store_true",
                   help="keep the VM running until Ctrl-C, then keep its "
                   "console log under logs/ (the path is printed)")
    b.add_argument("--json", action="store_true",
                   help="print the report as JSON")
    b.add_argument("--guest", choices=["smoke"], default=None,
                   help="force the built-in smoke guest (and do one TLS "
                   "handshake to it)")
    b.add_argument("--setting", action="append", default=[],
                   metavar="KEY=VALUE",
                   help="a capos-init setting (repeatable), e.g. "
                   "acmeDirectory=URL")
    b.add_argument("--kernel-arg", action="append", default=[],
                   metavar="WORD",
                   help="an extra kernel command-line word (repeatable), "
                   "e.g. capos.debug=importtime: every Python import's "
                   "time on the console")
    b.add_argument("--translation", action="store_true",
                   help="also report QEMU's translation-block count at "
                   "each boot stage (HMP `info jit`): how much distinct "
                   "guest code ran, a figure the host's load hardly "
                   "moves")
    b.add_argument("--data-disk", type=Path, default=None, metavar="IMG",
                   help="attach this ext4 image as the guest's /data (a "
                   "fresh one is made if IMG does not exist)")
    a = ap.parse_args(argv)
    _check_boot_args(ap, a)
    try:
        return _boot(a)
    except VMError as e:
        print(f"boot failed: {e.reason}", file=sys.stderr)
        if a.json:
            print(json.dumps({"outcome": "error", "reason": "bootFailed",
                              "detail": e.reason}))
        return 1


if __name__ == "__main__":
    sys.exit(main())
