"""The responder's HTTP front and its answers to bad requests
(RFC 6960 appendix A.1 and section 2.3)."""

from __future__ import annotations

import http.client

import pytest
from cryptography.x509 import ocsp

from services.ocsp.server import LOOPBACK
from tests.services.ocsp.pkiworld import World


def request(w: World, method: str, path: str,
            body: bytes = b"") -> tuple[int, bytes, str]:
    conn = http.client.HTTPConnection(LOOPBACK, w.server.port, timeout=5)
    try:
        conn.request(method, path, body=body or None, headers={
            "Content-Type": "application/ocsp-request"})
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.headers["Content-Type"]
    finally:
        conn.close()


def test_binds_loopback_only(w: World) -> None:
    assert w.server.url.startswith("http://127.0.0.1:")
    assert w.server._httpd is not None
    assert w.server._httpd.server_address[0] == "127.0.0.1"


def test_malformed_request_gets_malformed_request(w: World) -> None:
    status, body, ctype = request(w, "POST", "/ocsp", b"\x30\x03\x02\x01\x01")
    assert (status, ctype) == (200, "application/ocsp-response")
    assert ocsp.load_der_ocsp_response(body).response_status is (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST)


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("GET", "/elsewhere/AAAA", b"", 404),
    ("GET", "/ocsp/%%%not-base64", b"", 400),
    ("POST", "/ocsp", b"", 400),
], ids=["unknown-path", "bad-base64", "empty-post"])
def test_http_errors(w: World, method: str, path: str, body: bytes,
                     status: int) -> None:
    assert request(w, method, path, body)[0] == status
    assert w.server.answered == 0
