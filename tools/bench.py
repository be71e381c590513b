"""``make bench``: the figures issue #2 asks for, one per line.

Format: ``bench: <name> = <value> <unit>``, and for a comparison
``(<peer> <value> <unit>, ratio <x>)`` after it. No figure is asserted
anywhere; these are measurements, printed.

- image: initramfs size (zstd);
- boot: QEMU start to capos-init's CAPOS-READY, and to the gateway
  serving its ACME certificate, under TCG; the peer is the single-process
  smoke guest of the same image booted in the same run;
- memory: guest memory in use when every service is ready, and the
  services' peak (their memory cgroup's ``memory.peak``) after issuance
  and 20 handshakes;
- verify: one verifyChain over a capability call against pyca's
  verifier alone, on the same chain, in the same process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def line(name: str, value: float, unit: str,
         peer: tuple[str, float] | None = None) -> None:
    text = f"bench: {name} = {value:.3f} {unit}"
    if peer is not None and peer[1] > 0:
        ratio = value / peer[1]
        text += f" ({peer[0]} {peer[1]:.3f} {unit}, ratio {ratio:.2f})"
    print(text, flush=True)


def boot_figures() -> None:
    from tools import run
    from tools.pebble import Pebble
    from tools.vm import VM

    report = run.Report()
    manifest, pub = run.build_manifest(report)
    image = run.build_image(report, manifest, pub)
    line("initramfs_size", image.joinpath(
        "initramfs.cpio.zst").stat().st_size / 1e6, "MB")
    with VM(image, guest="smoke") as smoke:
        smoke_ready = smoke.boot_seconds
    logs = REPO / "logs" / "bench"
    with Pebble(logs, nonce_reject=0) as peb:
        vm = VM(image, hostfwd=[(peb.ports.http01, 80)],
                guestfwd=[(run.ACME_GUEST_IP, peb.ports.acme,
                           peb.ports.acme)],
                append=(f"capos.host={run.ACME_GUEST_IP}:acme.capos.test "
                        "capos.setting=acmeDirectory=https://"
                        f"acme.capos.test:{peb.ports.acme}/dir "
                        f"capos.setting=tlsName={run.NAME}"),
                console_dir=logs)
        with vm:
            ready = vm.boot_seconds
            used = re.search(r"mem_used_kb=(\d+)", vm.ready_line)
            vm.wait_for("CAPOS-GATEWAY serving", 240)
            serving = time.monotonic() - vm._t0
            from tools.vm import tls_handshake
            for _ in range(20):
                tls_handshake(vm.port)
            # capos-init reports a grown peak within half a second.
            time.sleep(1.0)
            mem = vm.memory_kb()
    line("boot_to_all_services_ready", ready, "s",
         ("single-process smoke guest", smoke_ready))
    line("boot_to_gateway_serving_acme_cert", serving, "s")
    if used:
        line("guest_memory_used_at_ready", int(used.group(1)) / 1024, "MiB")
    if mem["peak"]:
        line("services_memory_peak", mem["peak"] / 1024, "MiB")


def verify_figures() -> None:
    import capnp  # type: ignore[import-untyped]
    from cryptography import x509
    from cryptography.x509 import verification as pv

    from tools import verify

    chain = verify.read_certs(REPO / "tests/vectors/chains/google.com.pem")
    anchors = verify.mozilla_anchors()
    at = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    n = 200

    async def capability() -> list[float]:
        from services._runtime.audit import MemoryAuditSink
        from services._runtime.clock import SystemClock
        from services._runtime.schema import pki
        from services.x509.chain_impl import CertificateChainImpl
        from services.x509.model import parse_certificate
        from services.x509.policy import PRESETS
        from services.x509.trust import TrustStoreCore
        from services.x509.truststore_impl import TrustStoreImpl
        from services.x509.verifier_impl import CertVerifierImpl

        verifier = pki().CertVerifier._new_client(CertVerifierImpl(
            PRESETS["webPkiLenient"], audit=MemoryAuditSink(),
            clock=SystemClock()))
        trust = pki().TrustStore._new_client(
            TrustStoreImpl(TrustStoreCore(tuple(anchors))))
        chain_cap = pki().CertificateChain._new_client(
            CertificateChainImpl([parse_certificate(d) for d in chain]))
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            outcome = (await verifier.verifyChain(
                chain=chain_cap, trust=trust, purpose="tlsServerAuth",
                atEpochSeconds=int(at.timestamp()), hostname="google.com",
            )).outcome
            times.append(time.perf_counter() - t0)
            if outcome.which() != "valid":
                raise RuntimeError("benchmark chain did not verify")
        return times

    cap = asyncio.run(capnp.run(capability()))
    store = pv.Store([a.cert.cert for a in anchors])
    leaf = x509.load_der_x509_certificate(chain[0])
    inter = [x509.load_der_x509_certificate(d) for d in chain[1:]]
    bare = []
    for _ in range(n):
        t0 = time.perf_counter()
        verifier = (pv.PolicyBuilder().store(store).time(at)
                    .build_server_verifier(pv.DNSName("google.com")))
        verifier.verify(leaf, inter)
        bare.append(time.perf_counter() - t0)
    line("verify_chain_capability_call",
         statistics.median(cap) * 1000, "ms",
         ("pyca alone", statistics.median(bare) * 1000))


def main() -> int:
    verify_figures()
    boot_figures()
    return 0


if __name__ == "__main__":
    sys.exit(main())
