"""Interop with real OpenSSL: ``openssl ocsp`` as the responder for the
project's client, and as the client of the project's responder.

OpenSSL reads the real clock, so these tests run the CA and both sides
on :class:`SystemClock`; nothing asserts a time.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding

from services._runtime.clock import SystemClock
from services.ca.core import PrivateCA
from services.ca.model import CAConfig
from services.ocsp.client import ClientSettings, fetch_status
from services.ocsp.errors import Problem, ResponseRejectedError
from services.ocsp.responder import for_ca
from services.ocsp.server import OcspHttpServer
from services.ocsp.transport import HttpTransport
from tests.services.ca import helpers as h
from tests.services.ocsp.openssl_peer import OpenSSLResponder
from tests.services.ocsp.pkiworld import odd_signer

CLOCK = SystemClock()


@pytest.fixture
def ca(tmp_path: Path) -> Iterator[PrivateCA]:
    ca = PrivateCA(tmp_path / "ca", CAConfig(
        ocsp_url="http://127.0.0.1:9/ocsp", crl_url="http://127.0.0.1:9/crl"),
        CLOCK)
    yield ca
    ca.close()


def test_openssl_ocsp_responder_for_our_client(ca: PrivateCA,
                                              tmp_path: Path) -> None:
    good = h.issue_direct(ca, ["good.example.com"])
    bad = h.issue_direct(ca, ["bad.example.com"])
    ca.revoke(bad.serial_number, "keyCompromise")
    with OpenSSLResponder(ca, CLOCK, tmp_path / "openssl") as peer:
        url = peer.server.url
        for cert_id_hash in ("sha1", "sha256"):
            settings = ClientSettings(cert_id_hash=cert_id_hash)
            g = fetch_status(good, ca.cert, HttpTransport(), CLOCK.now(),
                             settings, url=url)
            b = fetch_status(bad, ca.cert, HttpTransport(), CLOCK.now(),
                             settings, url=url)
            assert g.status == "good"
            assert (b.status, b.revocation_reason) == ("revoked",
                                                       "keyCompromise")
            assert b.revocation_time == ca.lookup(
                bad.serial_number).revoked_at  # type: ignore[union-attr]
            assert g.validity == dt.timedelta(days=1)
            assert "OCSP Responder" in g.signer
        # A certificate issued after the index was written is unknown
        # to OpenSSL until the index is rewritten.
        other = h.issue_direct(ca, ["other.example.com"])
        assert fetch_status(other, ca.cert, HttpTransport(), CLOCK.now(),
                            url=url).status == "unknown"
        peer.write_index()
        assert fetch_status(other, ca.cert, HttpTransport(), CLOCK.now(),
                            url=url).status == "good"
        assert peer.server.answered == 6


def test_openssl_responder_with_unauthorised_signer_is_refused(
        ca: PrivateCA, tmp_path: Path) -> None:
    leaf = h.issue_direct(ca, ["www.example.com"])
    with OpenSSLResponder(ca, CLOCK, tmp_path / "openssl") as peer:
        # Swap in a signer the CA issued without id-kp-OCSPSigning.
        rogue = odd_signer(ca, eku=False)
        (peer.dir / "rsigner.pem").write_bytes(
            rogue.cert.public_bytes(Encoding.PEM))
        (peer.dir / "rkey.pem").write_bytes(rogue.key.private_bytes(
            Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        with pytest.raises(ResponseRejectedError) as err:
            fetch_status(leaf, ca.cert, HttpTransport(), CLOCK.now(),
                         url=peer.server.url)
    assert err.value.problem is Problem.responderNotOcspSigning


def openssl_client(ca: PrivateCA, cert: x509.Certificate, url: str,
                   tmp: Path) -> subprocess.CompletedProcess[str]:
    (tmp / "ca.pem").write_bytes(ca.cert.public_bytes(Encoding.PEM))
    (tmp / "leaf.pem").write_bytes(cert.public_bytes(Encoding.PEM))
    return subprocess.run(
        ["openssl", "ocsp", "-issuer", str(tmp / "ca.pem"),
         "-cert", str(tmp / "leaf.pem"), "-url", url,
         "-CAfile", str(tmp / "ca.pem")],
        capture_output=True, text=True, timeout=30, cwd=tmp)


def test_openssl_client_of_our_responder(ca: PrivateCA,
                                        tmp_path: Path) -> None:
    good = h.issue_direct(ca, ["good.example.com"])
    bad = h.issue_direct(ca, ["bad.example.com"])
    ca.revoke(bad.serial_number, "superseded")
    core = for_ca(ca, dt.timedelta(hours=2))
    with OcspHttpServer(core.respond, CLOCK) as server:
        ok = openssl_client(ca, good, server.url, tmp_path)
        rv = openssl_client(ca, bad, server.url, tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "Response verify OK" in ok.stderr
    assert f"{tmp_path / 'leaf.pem'}: good" in ok.stdout
    assert "WARNING" not in ok.stdout + ok.stderr  # the nonce is echoed
    assert f"{tmp_path / 'leaf.pem'}: revoked" in rv.stdout
    assert "Reason: superseded" in rv.stdout
    assert "Revocation Time:" in rv.stdout
