"""``make run``: build, boot, issue, serve, check, report.

Steps (each printed as it starts and ends; a failure names its step):

1. manifest  build and sign ``build/manifest.bin`` with the ACME server's
             test root as the ``acme-server-root`` extra anchor;
2. image     build ``build/image`` (cached on its inputs);
3. pebble    start pebble and pebble-challtestsrv on 127.0.0.1;
4. boot      boot the image in QEMU (TCG) through QMP, with a fresh
             data disk (logs/run-*/data.img); wait for the
             guest's ``CAPOS-READY`` line;
5. issue     wait for the gateway's ``CAPOS-GATEWAY serving`` line: the
             guest's ACME client got a certificate from pebble (http-01
             through QEMU's forward of 127.0.0.1:<httpPort> to guest :80);
6. tls       curl and ``openssl s_client`` through the forwarded 443;
7. verify    the served chain through the project's CertVerifier against
             pebble's issuance root.

Exit status: 0 every step worked; 1 a step failed (named on stderr and in
the report); 130 interrupted (Ctrl-C or SIGTERM; the VM and pebble are
stopped first); 2 usage error. ``make run`` exits 2 for all but 0 (make's
own status for a failed command).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tools._cli import pipe_safe

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build"
NAME = "www.capos.test"
ACME_GUEST_IP = "10.0.2.100"


class StepError(Exception):
    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"{step}: {detail}")
        self.step = step
        self.detail = detail


@dataclasses.dataclass
class Report:
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    current: str = ""  # the step running now
    failed: str = ""
    error: str = ""


def step(report: Report, name: str, fn: Callable[[], Any]) -> Any:
    print(f"run: {name} ...", flush=True)
    report.current = name
    t0 = time.monotonic()
    try:
        result = fn()
    except StepError:
        raise
    except Exception as err:
        raise StepError(name, f"{type(err).__name__}: {err}") from err
    report.timings[name] = round(time.monotonic() - t0, 3)
    print(f"run: {name} done in {report.timings[name]:.1f} s", flush=True)
    return result


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    return str(path.relative_to(REPO) if path.is_relative_to(REPO)
               else path)


def _cached_manifest_usable(out: Path, key: Any) -> bool:
    """Whether the manifest built from the same inputs can be booted
    again: signed by ``key``, readable, and a day or more from expiry.
    A damaged or foreign file is built again, and the run says why."""
    from bootmanifest import sign
    from bootmanifest.errors import ManifestError

    try:
        manifest = sign.verify(out.read_bytes(), [key.public_key()], 1, 0,
                               dt.datetime.now(dt.UTC))
    except (ManifestError, OSError) as err:
        why = (f"{err.reason}: {err.detail}"
               if isinstance(err, ManifestError) else str(err))
        print(f"run: {_shown(out)} cannot be used again ({why}); "
              "building it again", flush=True)
        return False
    return bool(manifest.expiresAt > time.time() + 86400)


def build_manifest(report: Report) -> tuple[Path, Path]:
    from bootmanifest import cli, sign
    from tools.pebble import CACHE, server_ca

    root, _, _ = server_ca(CACHE / "pebble")
    BUILD.mkdir(exist_ok=True)  # bootmanifest build makes no directory
    out = BUILD / "manifest.bin"
    pub = BUILD / "manifest.pub"
    key = sign.load_or_create_key()
    stamp = BUILD / "manifest.inputs.sha256"
    want = manifest_inputs_digest(root, key)
    fresh = (
        out.exists() and stamp.exists()
        and stamp.read_text().strip() == want
        and _cached_manifest_usable(out, key)
    )
    if fresh:
        print("run: manifest inputs unchanged, reusing "
              f"{_shown(out)}", flush=True)
    else:
        code = cli.main(["build", "--out", str(out), "--extra-anchor",
                         f"acme-server-root={root}"])
        if code != 0:
            raise StepError("manifest",
                            f"bootmanifest build exited {code}")
        stamp.write_text(want + "\n")
    pub.write_text(sign.raw_public(key.public_key()).hex() + "\n")
    summary = cli.summary(out.read_bytes())
    report.facts["manifest"] = {
        "version": summary["version"],
        "sha256": summary["manifestSha256"],
        "anchors": summary["rootBundle"]["anchors"],
        "tlsAnchors": summary["rootBundle"]["tlsAnchors"],
        "ctLogs": summary["ctLogList"]["logs"],
        "ctListVersion": summary["ctLogList"]["version"],
    }
    return out, pub


def manifest_inputs_digest(root: Path, key: Any) -> str:
    """What a manifest is made from: the data, graph, presets, the ACME
    server root and the signing key. Unchanged inputs reuse the manifest,
    so the image stays cached too."""
    from bootmanifest import build, sign

    h = hashlib.sha256()
    files = sorted(p for p in build.PACKAGE_DIR.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts)
    for path in [*files, root]:
        h.update(str(path.relative_to(path.anchor)).encode())
        h.update(path.read_bytes())
    h.update(sign.key_id(key.public_key()))
    return h.hexdigest()


def build_image(report: Report, manifest: Path, pub: Path) -> Path:
    from image import build as image_build

    out = BUILD / "image"
    digest = image_build.main(["--out", str(out), "--manifest",
                               str(manifest), "--pubkey", str(pub)])
    if digest != 0:
        raise StepError("image", f"image build exited {digest}")
    sha = (out / "initramfs.cpio.zst.sha256").read_text().split()[0]
    report.facts["image"] = {
        "sha256": sha,
        "initramfsBytes": (out / "initramfs.cpio.zst").stat().st_size,
    }
    return out


def curl(port: int, root: Path) -> dict[str, Any]:
    proc = subprocess.run(
        ["curl", "-sS", "--max-time", "30", "--cacert", str(root),
         "--resolve", f"{NAME}:{port}:127.0.0.1",
         "-w", "%{http_code} %{ssl_verify_result}",
         "-o", "/dev/null", f"https://{NAME}:{port}/"],
        capture_output=True, text=True, timeout=60,
    )
    if proc.returncode != 0:
        raise StepError("tls", f"curl: {proc.stderr.strip()}")
    code, verify = proc.stdout.split()
    return {"httpStatus": int(code), "curlVerify": int(verify)}


def s_client(port: int, root: Path) -> dict[str, Any]:
    proc = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
         "-servername", NAME, "-CAfile", str(root), "-verify_return_error",
         "-showcerts", "-brief"],
        input="", capture_output=True, text=True, timeout=60,
    )
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise StepError("tls", f"openssl s_client: {text.strip()[-300:]}")
    version = re.search(r"Protocol version: (\S+)", text)
    cipher = re.search(r"Ciphersuite: (\S+)", text)
    return {"tlsVersion": version.group(1) if version else "",
            "cipher": cipher.group(1) if cipher else "",
            "opensslVerify": "Verification: OK" in text}


def served_chain(port: int) -> list[bytes]:
    proc = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
         "-servername", NAME, "-showcerts"],
        input="", capture_output=True, text=True, timeout=60,
    )
    pems = re.findall(
        r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
        proc.stdout, re.S)
    if not pems:
        raise StepError("verify", "no certificate in the handshake")
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    return [x509.load_pem_x509_certificate(p.encode()).public_bytes(
        serialization.Encoding.DER) for p in pems]


def verify_served(port: int, root: Path) -> dict[str, Any]:
    from tools import verify

    chain_file = root.parent / "served-chain.pem"
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    chain_file.write_bytes(b"".join(
        x509.load_der_x509_certificate(d).public_bytes(
            serialization.Encoding.PEM) for d in served_chain(port)))


    from services._runtime import loop
    from services.x509.model import parse_certificate
    from services.x509.trust import Anchor

    anchors = [Anchor(parse_certificate(d), "pebble")
               for d in verify.read_certs(root)]
    result = loop.run(verify.verify(
        verify.read_certs(chain_file), anchors, "webPkiLenient",
        "tlsServerAuth", dt.datetime.now(dt.UTC), NAME))
    if result["outcome"] != "valid":
        raise StepError("verify", f"{result['reason']}: {result['detail']}")
    return {"verification": "valid", "leaf": result["leaf"]}


def run(args: argparse.Namespace, report: Report) -> Report:
    from tools.pebble import Pebble
    from tools.vm import VM, make_data_disk

    stamp = time.strftime("%Y%m%dT%H%M%S")
    logs = REPO / "logs" / f"run-{stamp}"
    logs.mkdir(parents=True, exist_ok=True)
    report.facts["logs"] = str(logs)
    manifest, pub = step(report, "manifest",
                         lambda: build_manifest(report))
    image = step(report, "image", lambda: build_image(report, manifest, pub))
    with contextlib.ExitStack() as stack:
        # Started as a step: pebble that cannot start fails the run by
        # name (with its log), and one started half-way is stopped.
        peb = step(report, "pebble", lambda: stack.enter_context(
            Pebble(logs, nonce_reject=args.nonce_reject)))
        root_pem = logs / "pebble-issuance-root.pem"
        port = peb.ports.acme
        settings = {
            "acmeDirectory": f"https://acme.capos.test:{port}/dir",
            "tlsName": NAME,
        }
        vm = VM(
            image, keep_log=True,
            hostfwd=[(peb.ports.http01, 80)],
            guestfwd=[(ACME_GUEST_IP, port, port)],
            append=" ".join(
                [f"capos.host={ACME_GUEST_IP}:acme.capos.test"]
                + [f"capos.setting={k}={v}" for k, v in settings.items()]
            ),
            console_dir=logs, data_disk=make_data_disk(logs / "data.img"),
        )
        vm.progress = lambda line: print(f"run:   guest {line}", flush=True)
        try:
            step(report, "boot", vm.start)
            report.facts["bootSeconds"] = round(vm.boot_seconds, 2)
            # The report's manifest facts are read on the host: they are
            # the guest's only if it verified this very manifest.
            said = re.search(r"CAPOS-STAGE manifest-verified version=(\d+)",
                             vm.console())
            built = report.facts["manifest"]["version"]
            if said is None or int(said.group(1)) != built:
                raise StepError("boot", "the guest did not report verifying "
                                f"manifest version {built} (it said "
                                f"{said.group(0) if said else 'nothing'})")
            line = step(report, "issue", lambda: vm.wait_for(
                r"CAPOS-GATEWAY (serving|failed)", args.issue_timeout))
            if "failed" in line:
                raise StepError("issue", line)
            issued = re.search(r"issued=([0-9.]+)s", line)
            report.facts["issuanceSeconds"] = (
                float(issued.group(1)) if issued else None)
            root_pem.write_bytes(peb.issuance_roots()[0])
            report.facts.update(step(report, "tls", lambda: {
                **curl(vm.port, root_pem), **s_client(vm.port, root_pem)}))
            report.facts.update(step(report, "verify",
                                     lambda: verify_served(vm.port,
                                                           root_pem)))
            report.facts["memory"] = guest_memory(vm)
            records = vm.audit_records()
            report.facts["audit"] = {
                "records": len(records),
                "operations": sorted({
                    f"{r['service']}.{r['operation']}:{r['outcome']}"
                    for r in records}),
            }
            if args.keep:
                try:
                    # Inside the try: a Ctrl-C as soon as the line is out
                    # (while print returns) is the same stop.
                    print(f"run: VM serving https://{NAME}:{vm.port}/ "
                          f"(curl --resolve {NAME}:{vm.port}:127.0.0.1 "
                          f"--cacert {root_pem}); Ctrl-C stops it",
                          flush=True)
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    pass
        finally:
            vm.stop()
            for fact, kept in (("console", vm.kept_log),
                               ("auditLog", vm.kept_audit)):
                if kept is not None:
                    report.facts[fact] = str(kept)
    return report


def guest_memory(vm: Any) -> dict[str, int]:
    """The guest's RAM (QMP) and what capos-init reported using: the
    services' peak (their memory cgroup) and the guest's used memory."""
    info = vm.qmp("query-memory-size-summary")
    said = vm.memory_kb()
    return {"baseMemoryBytes": int(info.get("base-memory", 0)),
            "servicesPeakKiB": said["peak"], "guestUsedKiB": said["used"]}


def print_report(report: Report) -> None:
    f = report.facts
    m = f.get("manifest", {})
    img = f.get("image", {})
    lines = [
        "",
        "capOS PKI image: run report",
        "  result          "
        + ("FAILED at " + report.failed if report.failed else "ok"),
    ]
    if report.error:
        lines.append(f"  error           {report.error}")
    lines += [
        f"  image           sha256 {img.get('sha256', '-')} "
        f"({img.get('initramfsBytes', 0) / 1e6:.1f} MB initramfs)",
        f"  manifest        version {m.get('version', '-')} "
        f"sha256 {m.get('sha256', '-')}",
        f"  trust           {m.get('anchors', '-')} anchors "
        f"({m.get('tlsAnchors', '-')} TLS), {m.get('ctLogs', '-')} CT logs "
        f"(log list version {m.get('ctListVersion', '-')})",
        f"  boot            {f.get('bootSeconds', '-')} s to CAPOS-READY",
        f"  ACME issuance   {f.get('issuanceSeconds', '-')} s in the guest "
        "(account, order with http-01, stored)",
        f"  TLS             {f.get('tlsVersion', '-')} {f.get('cipher', '-')}"
        f" (curl HTTP {f.get('httpStatus', '-')}, openssl verify "
        f"{'OK' if f.get('opensslVerify') else '-'})",
        f"  CertVerifier    {f.get('verification', '-')}",
    ]
    if "memory" in f:  # measured once the checks passed
        mem = f["memory"]
        lines.append(
            f"  memory          services' peak "
            f"{mem['servicesPeakKiB'] / 1024:.1f} MiB (their cgroup's "
            f"high-water mark); guest in use "
            f"{mem['guestUsedKiB'] / 1024:.1f} MiB (kernel and in-RAM "
            f"initramfs included) of {mem['baseMemoryBytes'] >> 20} MiB")
    lines += [
        f"  logs            {f.get('logs', '-')}",
        f"  audit           {f.get('audit', {}).get('records', '-')} records"
        " from the guest: "
        + ", ".join(f.get("audit", {}).get("operations", [])),
        f"  console log     {f.get('console', '-')}",
        f"  audit log       {f.get('auditLog', '-')}",
        "  steps           " + ", ".join(
            f"{k} {v:.1f}s" for k, v in report.timings.items()),
    ]
    print("\n".join(lines), flush=True)


def _percent(text: str) -> int:
    """An argparse ``type``: an integer percentage, 0..100."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an integer") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{value} is not in 0..100")
    return value


def _seconds(text: str) -> float:
    """An argparse ``type``: a finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(
            f"{text} is not a positive finite number of seconds")
    return value


@contextlib.contextmanager
def _output_to_stderr(on: bool) -> Iterator[None]:
    """With ``--json``, stdout carries the report alone: while ``on``,
    what the steps print goes to stderr instead, Python's ``print``
    (the ``run:`` progress lines, ``bootmanifest build``'s ``wrote``
    line, ``image.build``'s digest line) and the output of any child
    process that inherits stdout (file descriptor 1) alike."""
    if not on:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved: int | None = None
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no descriptor 1 or 2: Python's streams only
        if saved is not None:
            os.close(saved)
            saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


@pipe_safe
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tools.run", description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 every step worked, 1 a step failed, 130 "
        "interrupted (Ctrl-C or SIGTERM; the VM and pebble are stopped "
        "first), 2 usage error. `make run` exits 2 for all but 0.",
    )
    p.add_argument("--keep", action="store_true",
                   help="keep the VM serving after the checks")
    p.add_argument("--json", action="store_true",
                   help="print the report as JSON, alone on stdout (the "
                   "progress lines go to stderr)")
    p.add_argument("--issue-timeout", type=_seconds, default=240.0,
                   help="seconds to wait for the certificate (TCG; "
                   "default %(default)s)")
    p.add_argument("--nonce-reject", type=_percent, default=5,
                   help="pebble's percentage of rejected nonces, 0..100 "
                   "(default %(default)s)")
    args = p.parse_args(argv)
    report = Report()
    # SIGTERM (kill, timeout, a cancelled CI job) unwinds like Ctrl-C, so
    # the VM and pebble are stopped by the same finally blocks.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    code = 0
    try:
        with _output_to_stderr(args.json):
            run(args, report)
    except StepError as err:
        report.failed, report.error = err.step, err.detail
        print(f"run: FAILED at step {err.step}: {err.detail}",
              file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        report.failed = report.current or "start"
        report.error = "interrupted; the VM and pebble were stopped"
        print(f"run: interrupted during step {report.failed}",
              file=sys.stderr, flush=True)
        code = 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2))
    else:
        print_report(report)
    return code or (1 if report.failed else 0)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
