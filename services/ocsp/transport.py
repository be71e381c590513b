"""Outbound OCSP over HTTP (RFC 6960 appendix A.1) behind a Protocol.

:class:`HttpTransport` POSTs with the stdlib ``http.client`` and a
timeout. It refuses URLs that are not ``http`` (OCSP over HTTPS would
need revocation checking of its own, RFC 6960 A.1) and, unless told
otherwise, any host but the loopback address: this platform's
responders run on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import socket
import urllib.parse
from collections.abc import Collection
from typing import Protocol

from services.ocsp.errors import UnavailableError

MAX_RESPONSE = 64 * 1024


class OcspTransport(Protocol):
    """Sends one DER request, returns the DER response body."""

    def post(self, url: str, request: bytes) -> bytes: ...


class HttpTransport:
    """HTTP POST with ``application/ocsp-request`` bodies."""

    def __init__(self, *, timeout: float = 5.0,
                 allowed_hosts: Collection[str] = ("127.0.0.1",)) -> None:
        self.timeout = timeout
        self.allowed_hosts = frozenset(allowed_hosts)

    def post(self, url: str, request: bytes) -> bytes:
        """:raises UnavailableError: refused URL, network fault, non-200."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise UnavailableError(f"responder URL {url!r} is not http")
        if parts.hostname not in self.allowed_hosts:
            raise UnavailableError(
                f"responder host {parts.hostname} is not allowed")
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80,
                                          timeout=self.timeout)
        try:
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.request("POST", parts.path or "/", body=request, headers={
                "Content-Type": "application/ocsp-request",
                "Accept": "application/ocsp-response"})
            resp = conn.getresponse()
            body = resp.read(MAX_RESPONSE + 1)
        except (OSError, http.client.HTTPException) as err:
            raise UnavailableError(f"{url}: {err}") from err
        finally:
            conn.close()
        if resp.status != 200:
            raise UnavailableError(f"{url}: HTTP {resp.status}")
        if len(body) > MAX_RESPONSE:
            raise UnavailableError(f"{url}: response over {MAX_RESPONSE} B")
        return body
