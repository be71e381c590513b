"""A tls-alpn-01 responder (RFC 8737) over one :class:`AlpnSlot`.

A TLS listener (pyOpenSSL, blocking sockets, one thread per connection)
whose only job is to answer validation handshakes: a ClientHello that
offers ``acme-tls/1`` with the slot's name as SNI gets the slot's
challenge certificate, and the connection is closed after the
handshake (section 3: no application data). Anything else gets a
placeholder certificate and no protocol. On the host it listens where
pebble's ``tlsPort`` points; in the gateway the same slot is consulted
from the TLS listener's ALPN callback instead.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import struct
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from services.gateway.solver_impl import AlpnSlot

log = logging.getLogger(__name__)


def responder_context(slot: AlpnSlot) -> SSL.Context:
    """A server context whose ALPN callback is the slot's.

    Its own certificate is a self-signed placeholder, for handshakes the
    slot does not answer: it carries no acmeIdentifier a validator could
    accept.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = slot.clock.now()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                         "tls-alpn-01 placeholder")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.use_privatekey(key)
    ctx.use_certificate(cert)
    ctx.set_alpn_select_callback(slot.select)
    return ctx


class AlpnResponder:
    """Serves one slot on a listening socket bound to 127.0.0.1."""

    def __init__(self, slot: AlpnSlot, sock: socket.socket) -> None:
        host = sock.getsockname()[0]
        if host != "127.0.0.1":
            raise ValueError(f"responder must listen on 127.0.0.1, not {host}")
        self._slot = slot
        self._sock = sock
        self._sock.setblocking(True)
        self._ctx = responder_context(slot)
        self._stop = threading.Event()
        self.answered = 0

    def start(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,),
                             daemon=True).start()

    def _handle(self, raw: socket.socket) -> None:
        raw.setblocking(True)
        limit = struct.pack("ll", 10, 0)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
        conn = SSL.Connection(self._ctx, raw)
        conn.set_accept_state()
        try:
            conn.do_handshake()
            if conn.get_alpn_proto_negotiated() == b"acme-tls/1":
                self.answered += 1
            conn.shutdown()
        except (SSL.Error, OSError) as err:
            log.debug("tls-alpn-01 connection ended: %s", err)
        finally:
            raw.close()
