"""Revocation figures for ``make bench`` (issue #5), one per line.

- ocsp_responses_signed: responses the project's responder core signs
  per second, in process (no HTTP);
- ocsp_http_responses: the project's responder answering over HTTP on
  127.0.0.1, against ``openssl ocsp`` run per request behind the same
  loopback server (the only loopback-safe way to run it, DESIGN.md 4a),
  measured in the same run;
- ocsp_status_checks: the project's client (request, HTTP POST,
  signature-chain, CertID and freshness checks) against the project's
  responder on 127.0.0.1;
- tls_handshakes_with_staple / _without_staple: full TLS 1.3
  handshakes per second against the in-process pyOpenSSL stapling
  server, the client asking for status each time (TCP_NODELAY, a
  bounded count); the peer of the first is the second;
- guest_tls_handshakes_with_staple / _without_staple: the same against
  the guest's ``tlsstaple`` endpoint (the image under TCG, through
  QEMU's 127.0.0.1 forward of port 8443), the client asking for status
  or not, in alternating rounds.

Every count is bounded; nothing is asserted. Run:
``.venv/bin/python -c "from tools.bench_revocation import figures;
figures()"``.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tools.bench import line


def _rate(n: int, step: Callable[[int], object], warmup: int = 5) -> float:
    for i in range(warmup):
        step(i)
    t0 = time.perf_counter()
    for i in range(n):
        step(i)
    return n / (time.perf_counter() - t0)


def _interleaved(n: int, rounds: int,
                 a: Callable[[int], object], b: Callable[[int], object],
                 switch: Callable[[bool], None]) -> tuple[float, float]:
    """Rates of ``a`` and ``b`` measured in alternating rounds, so drift
    in the machine's load falls on both alike."""
    spent = {True: 0.0, False: 0.0}
    for _ in range(rounds):
        for first in (True, False):
            switch(first)
            step = a if first else b
            step(0)
            t0 = time.perf_counter()
            for i in range(n):
                step(i)
            spent[first] += time.perf_counter() - t0
    return n * rounds / spent[True], n * rounds / spent[False]


def figures() -> None:
    from cryptography import x509

    from services._runtime.clock import SystemClock
    from services.ca import policy as ca_policy
    from services.ca.core import PrivateCA
    from services.ca.issuer import new_key
    from services.ca.model import CAConfig, IssuancePolicy, parse_request
    from services.ocsp.client import fetch_status
    from services.ocsp.policy import build_request
    from services.ocsp.responder import for_ca
    from services.ocsp.server import OcspHttpServer
    from services.ocsp.staple_tls import StaplingTLSServer, client_handshake
    from services.ocsp.transport import HttpTransport
    from tests.services.ca.helpers import csr
    from tests.services.ocsp.openssl_peer import OpenSSLResponder

    clock = SystemClock()
    with tempfile.TemporaryDirectory() as tmp:
        core_holder: dict[str, object] = {}
        server = OcspHttpServer(
            lambda req, now: core_holder["core"].respond(  # type: ignore
                req, now), clock).start()
        try:
            ca = PrivateCA(Path(tmp) / "ca", CAConfig(
                ocsp_url=server.url, crl_url=f"{server.url}/crl"), clock)
            core = for_ca(ca, dt.timedelta(hours=2))
            core_holder["core"] = core
            key = new_key("ecdsaP256")
            admitted = ca_policy.admit(IssuancePolicy(), parse_request(
                csr(["bench.example.com"], key), (), 0, ()))
            record = ca.issue(admitted)
            leaf = x509.load_der_x509_certificate(record.der)
            request = build_request(leaf, ca.cert)

            signed = _rate(500, lambda i: core.respond(request, clock.now()))
            line("ocsp_responses_signed", signed, "responses/s")

            transport = HttpTransport()
            ours = _rate(200, lambda i: transport.post(server.url, request))
            with OpenSSLResponder(ca, clock, Path(tmp) / "openssl") as peer:
                theirs = _rate(40, lambda i: transport.post(
                    peer.server.url, request))
            line("ocsp_http_responses", ours, "responses/s",
                 ("openssl ocsp per request", theirs))

            checks = _rate(200, lambda i: fetch_status(
                leaf, ca.cert, transport, clock.now()))
            line("ocsp_status_checks", checks, "checks/s")

            staple = core.respond(request, clock.now())
            held = {"der": staple}
            with StaplingTLSServer(key, [record.der, ca.cert_der],
                                   lambda: held["der"]) as tls:
                if client_handshake(tls.port) != staple:
                    raise RuntimeError("the staple did not arrive")

                def switch(stapling: bool) -> None:
                    held["der"] = staple if stapling else b""

                def shake(i: int) -> bytes:
                    return client_handshake(tls.port)

                with_staple, without = _interleaved(50, 4, shake, shake,
                                                    switch)
            line("tls_handshakes_with_staple", with_staple, "handshakes/s",
                 ("without staple", without))
            line("tls_handshakes_without_staple", without, "handshakes/s")
            ca.close()
        finally:
            server.stop()


    guest_figures()


def guest_figures() -> None:
    """Handshakes per second against the stapling endpoint in the guest."""
    import contextlib
    import sys

    from services.ocsp.staple_tls import client_handshake
    from tools import run
    from tools.vm import VM, _free_port

    # Build chatter goes to stderr: stdout carries figures only.
    with contextlib.redirect_stdout(sys.stderr):
        report = run.Report()
        manifest, pub = run.build_manifest(report)
        image = run.build_image(report, manifest, pub)
    port = _free_port()
    with VM(image, hostfwd=[(port, 8443)], append=(
            "capos.setting=acmeDirectory=https://127.0.0.1:9/dir "
            "no_timer_check")) as vm:
        vm.wait_for(r"CAPOS-STAPLE health=ok", 90)
        if not client_handshake(port):
            raise RuntimeError("the guest stapled nothing")
        asking = {"status": True}

        def switch(stapling: bool) -> None:
            asking["status"] = stapling

        def shake(i: int) -> bytes:
            return client_handshake(port, want_status=asking["status"])

        with_staple, without = _interleaved(20, 3, shake, shake, switch)
    line("guest_tls_handshakes_with_staple", with_staple, "handshakes/s",
         ("without staple", without))
    line("guest_tls_handshakes_without_staple", without, "handshakes/s")


if __name__ == "__main__":
    figures()
