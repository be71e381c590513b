"""One HTTPS exchange on an accepted socket, for the TLS endpoints.

The gateway (ACME certificate, port 443) and the stapling endpoint
(private CA certificate, port 8443) answer a connection the same way: a
pyOpenSSL handshake under their own context, one request read, one short
plain-text page, close. What differs is the context, the page and the
time a stuck peer may hold a thread.
"""

from __future__ import annotations

import logging
import socket
import struct

from OpenSSL import SSL

log = logging.getLogger(__name__)

#: The most of a request read before answering.
MAX_REQUEST = 65536


def answer(raw: socket.socket, ctx: SSL.Context, body: bytes,
           timeout_s: int) -> bool:
    """Handshake on ``raw``, read one request, send ``body``, close.

    pyOpenSSL needs a blocking socket: a Python-level timeout makes the fd
    non-blocking and ``recv`` then raises WantReadError, so a kernel
    receive/send timeout (``timeout_s``) bounds a stuck peer instead.

    :returns: whether the handshake completed (the socket is closed
        either way; a peer that went away is logged at debug level).
    """
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    raw.setblocking(True)
    limit = struct.pack("ll", timeout_s, 0)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
    conn = SSL.Connection(ctx, raw)
    conn.set_accept_state()
    shook = False
    try:
        conn.do_handshake()
        shook = True
        data = b""
        while b"\r\n\r\n" not in data and len(data) < MAX_REQUEST:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        if data:
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                b"Connection: close\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body)
        conn.shutdown()
    except (SSL.Error, OSError) as err:
        log.debug("tls connection ended: %s", err)
    finally:
        raw.close()
    return shook
