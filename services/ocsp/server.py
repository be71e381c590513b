"""The OCSP responder over HTTP (RFC 6960 appendix A.1), bound to
127.0.0.1.

``POST`` with an ``application/ocsp-request`` body, or ``GET`` of the
base64 request (URL-encoded) appended to the path, both answered with
``application/ocsp-response``. Extra ``GET`` routes serve other
revocation data from the same port (the CRL distribution point).

Each request is answered by an ``answer(request_der, now)`` callable
(normally :meth:`ResponderCore.respond`) with ``now`` from the injected
clock. One thread per connection, as ``http.server`` does; the server
only ever binds the loopback address.
"""

from __future__ import annotations

import base64
import binascii
import http.server
import logging
import socket
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from services._runtime.clock import Clock

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
MAX_REQUEST = 64 * 1024

Answer = Callable[[bytes, Any], bytes]
Route = Callable[[], tuple[bytes, str]]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes; without TCP_NODELAY the
        # second waits on the peer's delayed ACK (DESIGN.md 4a).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY,
                                   1)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("ocsp http: " + format, *args)

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _answer(self, request: bytes) -> None:
        owner = self.server.owner
        body = owner.answer(request, owner.clock.now())
        owner.answered += 1
        self._send(200, body, "application/ocsp-response")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_REQUEST:
            self._send(400, b"bad length\n", "text/plain")
            return
        self._answer(self.rfile.read(length))

    def do_GET(self) -> None:
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        route = owner.routes.get(path)
        if route is not None:
            body, ctype = route()
            self._send(200, body, ctype)
            return
        prefix = owner.prefix.rstrip("/") + "/"
        if not path.startswith(prefix) or len(path) > 2 * MAX_REQUEST:
            self._send(404, b"not found\n", "text/plain")
            return
        try:
            request = base64.b64decode(
                urllib.parse.unquote(path[len(prefix):]), validate=True)
        except (binascii.Error, ValueError):
            self._send(400, b"bad base64\n", "text/plain")
            return
        self._answer(request)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    owner: OcspHttpServer


class OcspHttpServer:
    """A responder on ``http://127.0.0.1:<port><prefix>``.

    :param answer: ``(request_der, now) -> response_der``.
    :param routes: extra GET paths, each ``() -> (body, content type)``.
    """

    def __init__(self, answer: Answer, clock: Clock, *, port: int = 0,
                 prefix: str = "/ocsp",
                 routes: Mapping[str, Route] | None = None,
                 sock: socket.socket | None = None) -> None:
        """:param sock: a listening socket to serve on instead of binding
            127.0.0.1:``port`` (in the guest, capos-init makes it from
            the manifest's ``listen``)."""
        self.answer = answer
        self._sock = sock
        self.clock = clock
        self.prefix = prefix
        self.routes = dict(routes or {})
        self.answered = 0
        self._port = port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}{self.prefix}"

    def _bind(self) -> _Server:
        if self._sock is None:
            return _Server((LOOPBACK, self._port), _Handler)
        httpd = _Server(self._sock.getsockname()[:2], _Handler,
                        bind_and_activate=False)
        httpd.socket.close()
        self._sock.setblocking(True)
        httpd.socket = self._sock
        httpd.server_address = self._sock.getsockname()[:2]
        return httpd

    def start(self) -> OcspHttpServer:
        self._httpd = self._bind()
        self._httpd.owner = self
        self._port = self.port
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        log.info("OCSP responder listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop answering; the port is closed (a responder outage)."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> OcspHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
