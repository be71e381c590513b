"""A TLS server that staples (RFC 6066 section 8 status_request; TLS
1.3 carries it in the leaf's CertificateEntry, RFC 8446 4.4.2.1), with
pyOpenSSL's OCSP server callback.

:class:`StaplingTLSServer` listens on 127.0.0.1 only. At each handshake
whose ClientHello asks for status it calls ``staple()`` (normally
:meth:`OcspStaplerImpl.current_der` or :meth:`StaplerCore.peek`, both
free of side effects and so safe on the connection's thread):
the DER it returns is stapled; ``b""`` staples nothing, so a response
past its nextUpdate is never sent. One thread per connection with
blocking sockets (DESIGN.md 4a: pyOpenSSL needs them), each connection
answering one short HTTP/1.1 response.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

from cryptography import x509
from OpenSSL import SSL

from services._runtime import tls

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


def server_context(key: Any, ders: Sequence[bytes],
                   staple: Callable[[], bytes]) -> SSL.Context:
    """A TLS 1.2+ server context for ``key`` and ``ders`` (leaf first)
    that staples ``staple()``."""
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.use_privatekey(key)
    certs = [x509.load_der_x509_certificate(d) for d in ders]
    ctx.use_certificate(certs[0])
    for extra in certs[1:]:
        ctx.add_extra_chain_cert(extra)
    ctx.check_privatekey()

    def callback(conn: SSL.Connection, data: Any) -> bytes:
        try:
            return staple() or b""
        except Exception:  # an error must not break the handshake
            log.exception("staple source failed; stapling nothing")
            return b""

    ctx.set_ocsp_server_callback(callback)
    return ctx


class StaplingTLSServer:
    """Accepts on 127.0.0.1; staples what ``staple()`` returns."""

    def __init__(self, key: Any, ders: Sequence[bytes],
                 staple: Callable[[], bytes], *, port: int = 0,
                 sock: socket.socket | None = None) -> None:
        """:param sock: a listening socket to accept on instead of
            binding 127.0.0.1:``port`` (in the guest, capos-init makes
            it from the manifest's ``listen``)."""
        self.context = server_context(key, ders, staple)
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((LOOPBACK, port))
            sock.listen(64)
        sock.setblocking(True)
        self._sock = sock
        self.port = int(self._sock.getsockname()[1])
        self.handshakes = 0
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> StaplingTLSServer:
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closed.set()
        try:
            # Wake the accept() with a connection of our own.
            socket.create_connection((LOOPBACK, self.port), 1).close()
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(5)
        self._sock.close()

    def __enter__(self) -> StaplingTLSServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            if self._closed.is_set():
                conn.close()
                return
            threading.Thread(target=self._handle, args=(conn,),
                             daemon=True).start()

    def _handle(self, raw: socket.socket) -> None:
        if tls.answer(raw, self.context, b"capOS stapling server\n", 10):
            self.handshakes += 1


def client_handshake(port: int, *, want_status: bool = True,
                     version: int = SSL.TLS1_3_VERSION) -> bytes:
    """One handshake to 127.0.0.1:``port``; returns the staple (``b""``
    when none). For tests and the benchmark: it does not verify the
    server's chain, which is the verifier's job, not the transport's.
    """
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_min_proto_version(version)
    ctx.set_max_proto_version(version)
    seen: list[bytes] = []

    def on_status(conn: SSL.Connection, data: bytes, _: Any) -> bool:
        seen.append(bytes(data))
        return True

    if want_status:
        ctx.set_ocsp_client_callback(on_status)
    sock = socket.create_connection((LOOPBACK, port), 5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(True)
    conn = SSL.Connection(ctx, sock)
    conn.set_connect_state()
    if want_status:
        conn.request_ocsp()
    try:
        conn.do_handshake()
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        while True:
            try:
                if not conn.recv(4096):
                    break
            except SSL.ZeroReturnError:
                break
    finally:
        sock.close()
    return seen[0] if seen else b""
