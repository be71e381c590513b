"""The TLS gateway: serves the certificate the ACME client obtained.

At start it makes a TLS key and an ACME account key (each a
``PrivateKey`` capability held here), registers with the granted
``acme`` client, orders a certificate for the ``tlsName`` setting with
its own http-01 solver, and puts the chain in the granted ``certStore``
under the handle ``gateway``. It then holds a ``watch`` subscription on
that handle: every rotation event replaces the TLS context used from the
next handshake on. Nothing is read from files.

Listeners (made by init, from the manifest entry's ``listen``): port 80
answers http-01 challenges only; port 443 is TLS (pyOpenSSL, one thread
per connection, blocking sockets) and answers every request with a short
plain-text page.

Console lines: ``CAPOS-GATEWAY serving handle=gateway ...`` once the
first chain is served, ``CAPOS-GATEWAY rotated ...`` on each rotation,
``CAPOS-GATEWAY failed <reason>: <detail>`` if issuance fails.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
import time
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL

from services._runtime import audit as _audit
from services._runtime.boundary import parse_remote
from services._runtime.host import ServiceContext
from services._runtime.schema import pki
from services.certstore.store_impl import chain_ders
from services.gateway.solver_impl import (
    AlpnSlot,
    ChallengeTable,
    Http01SolverImpl,
)
from services.keys.private_key_impl import PrivateKeyImpl

log = logging.getLogger(__name__)
HANDLE = "gateway"


def say(line: str) -> None:
    print(f"CAPOS-GATEWAY {line}", flush=True)


def tls_context(key: Any, ders: list[bytes],
                alpn: AlpnSlot | None = None) -> SSL.Context:
    """A server context for one key and chain (leaf first); with an
    ALPN slot, tls-alpn-01 handshakes for its name get its challenge
    certificate (RFC 8737)."""
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    if alpn is not None:
        ctx.set_alpn_select_callback(alpn.select)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.use_privatekey(key)
    certs = [x509.load_der_x509_certificate(d) for d in ders]
    ctx.use_certificate(certs[0])
    for extra in certs[1:]:
        ctx.add_extra_chain_cert(extra)
    ctx.check_privatekey()
    return ctx


class TLSServer:
    """Accepts on a listening socket; each handshake uses the context
    current at accept time, so a rotation applies from the next one."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._sock.setblocking(True)
        self.context: SSL.Context | None = None
        self.handshakes = 0

    def start(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            conn, _ = self._sock.accept()
            threading.Thread(
                target=self._handle, args=(conn,), daemon=True
            ).start()

    def _handle(self, raw: socket.socket) -> None:
        ctx = self.context
        if ctx is None:
            raw.close()
            return
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # pyOpenSSL needs a blocking socket: a Python-level timeout makes
        # the fd non-blocking and recv then raises WantReadError. A kernel
        # receive/send timeout bounds a stuck peer instead.
        raw.setblocking(True)
        limit = struct.pack("ll", 30, 0)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
        conn = SSL.Connection(ctx, raw)
        conn.set_accept_state()
        try:
            conn.do_handshake()
            self.handshakes += 1
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            if data:
                body = b"capOS gateway: hello over TLS\n"
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    b"Connection: close\r\nContent-Length: "
                    + str(len(body)).encode() + b"\r\n\r\n" + body
                )
            conn.shutdown()
        except (SSL.Error, OSError) as err:
            log.debug("tls connection ended: %s", err)
        finally:
            raw.close()


async def serve_http01(sock: socket.socket, table: ChallengeTable) -> None:
    """Port 80: http-01 responses, 404 for anything else."""

    async def handle(reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            parts = line.decode("latin-1").split()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            found = (
                table.lookup(parts[1])
                if len(parts) >= 2 and parts[0] == "GET" else None
            )
            status = b"200 OK" if found else b"404 Not Found"
            body = (found or "not found\n").encode()
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain\r\n"
                b"Connection: close\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            await writer.drain()
        except (TimeoutError, OSError, UnicodeError):
            pass
        finally:
            writer.close()

    sock.setblocking(False)
    server = await asyncio.start_server(handle, sock=sock)
    async with server:
        await server.serve_forever()


class Gateway:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.table = ChallengeTable()
        self.tls = TLSServer(ctx.listeners[443])
        self.tls_key = ec.generate_private_key(ec.SECP256R1())
        self.alpn = AlpnSlot(ctx.settings.get("tlsName", "www.capos.test"),
                             ctx.clock)
        self.tasks: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        t0 = time.monotonic()
        acme = self.ctx.cap("acme", pki().AcmeClient)
        store = self.ctx.cap("certStore", pki().CertificateStore)
        name = self.ctx.settings.get("tlsName", "www.capos.test")
        try:
            account_key = PrivateKeyImpl(ec.generate_private_key(
                ec.SECP256R1()))
            account = (await acme.register(
                accountKey=account_key,
                contact=[self.ctx.settings.get(
                    "acmeContact", "mailto:admin@capos.test")],
            )).account
            chain = (await acme.order(
                account=account,
                identifiers=[{"type": "dns", "value": name}],
                certKey=PrivateKeyImpl(self.tls_key),
                solver=Http01SolverImpl(self.table),
            )).chain
            await store.put(handle=HANDLE, chain=chain)
        except Exception as err:
            reason, detail = parse_remote(err)
            say(f"failed {reason}: {detail}")
            return
        issued = time.monotonic() - t0
        sub = (await store.watch(handle=HANDLE)).subscription
        first = True
        while True:
            events = (await sub.events()).events
            for event in events:
                ders = await chain_ders(event.newChain)
                self.tls.context = tls_context(self.tls_key, ders,
                                               self.alpn)
                leaf = x509.load_der_x509_certificate(ders[0])
                fp = leaf.fingerprint(hashes.SHA256()).hex()
                self.ctx.audit.emit(_audit.AuditEvent(
                    at=self.ctx.clock.now(), service=self.ctx.name,
                    capability="gateway", operation="rotate",
                    outcome="ok", subject=(HANDLE, fp),
                ))
                if first:
                    say(f"serving handle={HANDLE} name={name} "
                        f"issued={issued:.3f}s sha256={fp}")
                    first = False
                else:
                    say(f"rotated handle={HANDLE} sha256={fp}")


def _report(task: asyncio.Task[None]) -> None:
    if task.cancelled() or task.exception() is None:
        return
    err = task.exception()
    if "disconnected" in str(err):
        say("stopped: init hung up")
    else:
        say(f"failed internal: {type(err).__name__}: {err}")


async def build(ctx: ServiceContext) -> dict[str, Any]:
    gw = Gateway(ctx)
    gw.tls.start()
    loop = asyncio.get_running_loop()
    gw.tasks.append(loop.create_task(serve_http01(ctx.listeners[80],
                                                  gw.table)))
    task = loop.create_task(gw.run())
    task.add_done_callback(_report)
    gw.tasks.append(task)
    return {"http01Solver": Http01SolverImpl(gw.table)}
