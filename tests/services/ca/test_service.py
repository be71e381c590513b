"""The CA service and the OCSP client service as capos-init starts
them: settings in, exports out, the responder on a listener on
127.0.0.1, a restart over the same directory."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from services._runtime.audit import MemoryAuditSink
from services._runtime.clock import FakeClock
from services._runtime.host import ServiceContext
from services._runtime.schema import pki
from services.ca import service as ca_service
from services.crl.policy import check_crl
from services.ocsp import service as ocsp_service
from services.x509.certificate_impl import CertificateImpl
from services.x509.model import parse_certificate
from tests.services.ca import helpers as h
from tests.services.x509.rpc import run, serve


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock
    sock.close()


def context(tmp_path: Path, sock: socket.socket,
            audit: MemoryAuditSink) -> ServiceContext:
    port = sock.getsockname()[1]
    return ServiceContext(
        name="ca", grants={}, inputs={}, clock=FakeClock(h.T0), audit=audit,
        settings={"caDir": str(tmp_path / "ca"),
                  "ocspUrl": f"http://127.0.0.1:{port}/ocsp",
                  "crlUrl": f"http://127.0.0.1:{port}/crl",
                  "ocspPort": str(port), "mustStaple": "true"},
        listeners={port: sock})


def test_service_issues_answers_and_restarts(
        tmp_path: Path, listener: socket.socket) -> None:
    audit = MemoryAuditSink()
    ctx = context(tmp_path, listener, audit)

    async def main() -> tuple[str, str, bytes, bytes]:
        exports = await ca_service.build(ctx)
        responder = (await ocsp_service.build(ctx))["ocspResponder"]
        async with serve(exports["ca"], pki().CertificateAuthority) as ca, \
                serve(responder, pki().OcspResponder) as ocsp:
            chain = (await ca.issue(h.request(["svc.example.com"]))).chain
            certs = (await chain.certificates()).chain
            leaf_der = bytes((await certs[0].der()).encoded)
            ca_der = bytes((await certs[1].der()).encoded)
            got = (await ocsp.status(
                CertificateImpl(parse_certificate(leaf_der)),
                CertificateImpl(parse_certificate(ca_der)), 0)).response
            serial = bytes((await certs[0].serial()).bytes)
            await ca.revoke(serial, "keyCompromise")
            again = (await ocsp.status(
                CertificateImpl(parse_certificate(leaf_der)),
                CertificateImpl(parse_certificate(ca_der)), 0)).response
            return str(got.status), str(again.status), leaf_der, ca_der

    try:
        good, revoked, leaf_der, ca_der = run(main)
        port = listener.getsockname()[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/crl",
                                    timeout=5) as resp:
            crl = resp.read()
    finally:
        for server in ca_service._RUNNING:
            server.stop()
        ca_service._RUNNING.clear()
    assert (good, revoked) == ("good", "revoked")
    leaf = x509.load_der_x509_certificate(leaf_der)
    issuer = x509.load_der_x509_certificate(ca_der)
    assert leaf.extensions.get_extension_for_class(x509.TLSFeature)
    checked = check_crl(crl, issuer, h.T0)
    assert checked.entries[leaf.serial_number].reason == "keyCompromise"
    ops = [(e.operation, e.outcome) for e in audit.events]
    assert ("issue", "ok") in ops and ("revoke", "ok") in ops


def test_restart_over_the_same_directory(tmp_path: Path,
                                         listener: socket.socket) -> None:
    audit = MemoryAuditSink()

    async def issue_then_list(ctx: ServiceContext) -> list[Any]:
        exports = await ca_service.build(ctx)
        async with serve(exports["ca"], pki().CertificateAuthority) as ca:
            if not (await ca.listIssued()).records:
                await ca.issue(h.request(["keep.example.com"]))
            return [(bytes(r.serial), r.revoked)
                    for r in (await ca.listIssued()).records]

    try:
        first = run(lambda: issue_then_list(
            context(tmp_path, listener, audit)))
        for server in ca_service._RUNNING:
            server.stop()
        ca_service._RUNNING.clear()
        second_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        second_sock.bind(("127.0.0.1", 0))
        second_sock.listen(4)
        second = run(lambda: issue_then_list(
            context(tmp_path, second_sock, audit)))
    finally:
        for server in ca_service._RUNNING:
            server.stop()
        ca_service._RUNNING.clear()
    assert len(first) == 1
    assert second == first
