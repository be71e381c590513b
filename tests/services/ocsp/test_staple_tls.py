"""The stapling TLS server against real ``openssl s_client -status``
(TLS 1.2 CertificateStatus and TLS 1.3 status_request in Certificate),
and against pyOpenSSL's client."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from services._runtime.audit import MemoryAuditSink
from services.ca import policy as ca_policy
from services.ca.model import IssuancePolicy, parse_request
from services.ocsp.staple_tls import StaplingTLSServer, client_handshake
from services.ocsp.stapler import StaplerCore, http_fetcher
from services.ocsp.transport import HttpTransport
from tests.services.ca import helpers as h
from tests.services.ocsp.pkiworld import HOUR, T0, World
from tests.services.x509 import pkifactory as f


@pytest.fixture
def served(w: World) -> Iterator[tuple[World, StaplerCore,
                                       StaplingTLSServer]]:
    key = f.ec_key("tls-server")
    admitted = ca_policy.admit(IssuancePolicy(must_staple=True),
                               parse_request(h.csr(["www.example.com"],
                                                   key), (), 0, ()))
    record = w.ca.issue(admitted)
    leaf = x509.load_der_x509_certificate(record.der)
    stapler = StaplerCore(http_fetcher(HttpTransport()), w.clock,
                          MemoryAuditSink())
    stapler.set_certificate(leaf, w.ca.cert)

    def staple() -> bytes:
        held = stapler.peek()
        return held.der if held else b""

    with StaplingTLSServer(key, [record.der, w.ca.cert_der],
                           staple) as server:
        yield w, stapler, server


def s_client(port: int, version: str) -> str:
    out = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
         "-servername", "www.example.com", "-status", version],
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=30)
    return out.stdout


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_s_client_sees_the_staple(served: tuple[World, StaplerCore,
                                                StaplingTLSServer],
                                  version: str) -> None:
    _, stapler, server = served
    held = stapler.tick()
    assert held is not None
    text = s_client(server.port, version)
    assert "OCSP Response Status: successful (0x0)" in text
    assert "Cert Status: good" in text
    assert "Responder Id:" in text
    # The server counts a handshake once its exchange is over, which can
    # be just after s_client has printed and gone: wait for it.
    deadline = time.monotonic() + 15
    while server.handshakes < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.handshakes >= 1


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_no_staple_when_the_stapler_has_none(
        served: tuple[World, StaplerCore, StaplingTLSServer],
        version: str) -> None:
    w, stapler, server = served
    # Nothing fetched yet: nothing to staple.
    assert "OCSP response: no response sent" in s_client(server.port,
                                                         version)
    # Fetched, then expired: nothing stapled either.
    stapler.tick()
    w.clock.set(T0 + 2 * HOUR)
    assert stapler.current() is None
    assert "OCSP response: no response sent" in s_client(server.port,
                                                         version)


def test_pyopenssl_client_receives_the_same_der(
        served: tuple[World, StaplerCore, StaplingTLSServer]) -> None:
    w, stapler, server = served
    assert client_handshake(server.port) == b""
    held = stapler.tick()
    assert held is not None
    got = client_handshake(server.port)
    assert got == held.der
    assert client_handshake(server.port, want_status=False) == b""
    assert held.der != w.ca.cert.public_bytes(Encoding.DER)
