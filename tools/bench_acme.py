"""ACME issuance time: the project's client against certbot and lego.

One pebble on 127.0.0.1 (nonce rejection 0, every authorization
validated afresh) serves all three in the same run. Each issuance is a
fresh account and a fresh P-256 certificate key for one new name, with
http-01 answered on pebble's ``httpPort``: the project's client through
its http-01 solver and the gateway's responder, certbot and lego through
their standalone servers (Debian packages ``certbot`` and ``lego``,
trusting pebble's HTTPS listener through ``REQUESTS_CA_BUNDLE`` and
``LEGO_CA_CERTIFICATES``, with temporary config and work directories).
certbot and lego are timed as the commands a person runs, start to exit.

Prints ``bench: acme_issuance_median = X s (certbot Y s, ratio Z)`` and
the same against lego.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import capnp
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services._runtime import loop
from services._runtime.audit import MemoryAuditSink
from services._runtime.clock import SystemClock
from services._runtime.schema import pki
from services.acme.client_impl import AcmeClientImpl
from services.gateway.service import serve_http01
from services.gateway.solver_impl import ChallengeTable, Http01SolverImpl
from services.keys.private_key_impl import PrivateKeyImpl
from tools.bench import line
from tools.pebble import Pebble

N = 5


def _ours(peb: Pebble, n: int) -> list[float]:
    root = x509.load_pem_x509_certificate(peb.root_pem.read_bytes())
    anchors = [root.public_bytes(serialization.Encoding.DER)]
    clock = SystemClock()
    impl = AcmeClientImpl(peb.local_directory_url, anchors, clock,
                          MemoryAuditSink(), service="bench")
    table = ChallengeTable()

    async def go() -> list[float]:
        a, b = socket.socketpair()
        server = await capnp.AsyncIoStream.create_connection(sock=a)
        client = await capnp.AsyncIoStream.create_connection(sock=b)
        host = capnp.TwoPartyServer(server, bootstrap=impl)
        acme = capnp.TwoPartyClient(client).bootstrap().cast_as(
            pki().AcmeClient)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", peb.ports.http01))
        sock.listen(16)
        responder = asyncio.get_running_loop().create_task(
            serve_http01(sock, table))
        times = []
        try:
            for i in range(n):
                t0 = clock.monotonic()
                account = (await acme.register(
                    accountKey=PrivateKeyImpl(ec.generate_private_key(
                        ec.SECP256R1())), contact=[])).account
                await acme.order(
                    account=account,
                    identifiers=[{"type": "dns",
                                  "value": f"ours{i}.capos.test"}],
                    certKey=PrivateKeyImpl(ec.generate_private_key(
                        ec.SECP256R1())),
                    solver=Http01SolverImpl(table))
                times.append(clock.monotonic() - t0)
        finally:
            responder.cancel()
            try:
                await responder
            except asyncio.CancelledError:
                pass
            sock.close()
            del host
            a.close()
            b.close()
        return times

    return loop.run(go())


def _timed(cmd: list[str], env: dict[str, str], log: Path) -> float:
    t0 = time.monotonic()
    done = subprocess.run(cmd, env={**os.environ, **env},
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=300, check=False)
    elapsed = time.monotonic() - t0
    log.write_bytes(done.stdout)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({done.returncode}); see {log}")
    return elapsed


def _certbot(peb: Pebble, n: int, work: Path) -> list[float]:
    times = []
    for i in range(n):
        d = work / f"certbot{i}"
        d.mkdir()
        times.append(_timed([
            "certbot", "certonly", "--standalone", "--non-interactive",
            "--agree-tos", "--register-unsafely-without-email",
            "--server", peb.local_directory_url,
            "-d", f"certbot{i}.capos.test",
            "--http-01-address", "127.0.0.1",
            "--http-01-port", str(peb.ports.http01),
            "--key-type", "ecdsa", "--elliptic-curve", "secp256r1",
            "--config-dir", str(d / "config"), "--work-dir",
            str(d / "work"), "--logs-dir", str(d / "logs"),
        ], {"REQUESTS_CA_BUNDLE": str(peb.root_pem)}, d / "out.log"))
    return times


def _lego(peb: Pebble, n: int, work: Path) -> list[float]:
    times = []
    for i in range(n):
        d = work / f"lego{i}"
        d.mkdir()
        times.append(_timed([
            "lego", "--server", peb.local_directory_url,
            "--email", "bench@capos.test", "--accept-tos",
            "--domains", f"lego{i}.capos.test", "--key-type", "ec256",
            "--http", "--http.port", f"127.0.0.1:{peb.ports.http01}",
            "--path", str(d), "run",
        ], {"LEGO_CA_CERTIFICATES": str(peb.root_pem)}, d / "out.log"))
    return times


def figures() -> None:
    missing = [t for t in ("certbot", "lego") if shutil.which(t) is None]
    if missing:
        raise SystemExit(f"bench_acme: missing {' '.join(missing)} "
                         "(tools/setup.py installs them)")
    with tempfile.TemporaryDirectory(prefix="capos-bench-acme-") as tmp:
        work = Path(tmp)
        with Pebble(work / "pebble-logs", nonce_reject=0,
                    authz_reuse=0) as peb:
            ours = statistics.median(_ours(peb, N))
            certbot = statistics.median(_certbot(peb, N, work))
            lego = statistics.median(_lego(peb, N, work))
    line("acme_issuance_median", ours, "s", ("certbot", certbot))
    line("acme_issuance_median", ours, "s", ("lego", lego))


if __name__ == "__main__":
    figures()
