"""The stapling TLS endpoint as capos-init starts it, beside the CA and
OCSP client services: a narrowed CA holder issues its must-staple
certificate, the handshake carries a good staple from the CA's own
responder, and a restart over the same state directory reuses the key,
chain and cached staple."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

from services._runtime.audit import MemoryAuditSink
from services._runtime.boundary import CapabilityError
from services._runtime.clock import FakeClock
from services._runtime.host import ServiceContext
from services._runtime.schema import pki
from services.ca import service as ca_service
from services.ocsp import service as ocsp_service
from services.ocsp.model import is_must_staple
from services.ocsp.staple_tls import client_handshake
from services.tlsstaple import service as tlsstaple
from tests.services.ca import helpers as h
from tests.services.x509.rpc import run, serve


class Granted:
    """What init hands a service: a capability typed on request."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def cast_as(self, interface: Any) -> Any:
        return self.client


def _listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def _stop_all(listeners: dict[int, socket.socket] | None = None) -> None:
    """Stop what the CA and tlsstaple builds left running, and close
    ``listeners``."""
    for server in ca_service._RUNNING:
        server.stop()
    ca_service._RUNNING.clear()
    for item in tlsstaple._RUNNING:
        if isinstance(item, asyncio.Task):
            item.cancel()
        elif hasattr(item, "stop"):
            item.stop()
    tlsstaple._RUNNING.clear()
    for sock in (listeners or {}).values():
        sock.close()


@contextlib.asynccontextmanager
async def _ca_and_ocsp(tmp_path: Path, clock: FakeClock,
                       audit: MemoryAuditSink,
                       listeners: dict[int, socket.socket],
                       ) -> AsyncIterator[tuple[Any, Any]]:
    """The real CA and OCSP client services, served as init grants
    them: the ``ca`` and ``ocsp`` capabilities tlsstaple is given."""
    exports = await ca_service.build(_context(
        "ca", tmp_path / "ca", clock, audit, listeners))
    responder = (await ocsp_service.build(_context(
        "ocsp", tmp_path / "ocsp", clock, audit, listeners))
    )["ocspResponder"]
    async with serve(exports["ca"], pki().CertificateAuthority) as ca, \
            serve(responder, pki().OcspResponder) as client:
        yield ca, client


async def _until(done: Callable[[], bool]) -> None:
    """Let the event loop run until ``done()`` (at most about 4 s)."""
    for _ in range(400):
        if done():
            return
        await asyncio.sleep(0.01)


async def _brought_up() -> None:
    """Wait for the task build() left bringing the endpoint up."""
    task = tlsstaple._RUNNING[0]
    assert isinstance(task, asyncio.Task)
    await asyncio.wait_for(asyncio.shield(task), 60)


def _context(name: str, state: Path, clock: FakeClock,
             audit: MemoryAuditSink, listeners: dict[int, socket.socket],
             grants: dict[str, Any] | None = None) -> ServiceContext:
    state.mkdir(parents=True, exist_ok=True)
    ca_port, tls_port = list(listeners)
    return ServiceContext(
        name=name, grants=grants or {},
        inputs={"stateDir": str(state).encode()}, clock=clock, audit=audit,
        settings={"ocspPort": str(ca_port), "staplePort": str(tls_port),
                  "stapleName": "staple.example.com"},
        listeners=listeners)


def test_serves_a_good_staple_and_restarts_from_its_state(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    audit = MemoryAuditSink()
    clock = FakeClock(h.T0)

    async def boot() -> bytes:
        ca_sock, tls_sock = _listener(), _listener()
        listeners = {ca_sock.getsockname()[1]: ca_sock,
                     tls_sock.getsockname()[1]: tls_sock}
        async with _ca_and_ocsp(tmp_path, clock, audit,
                                listeners) as (ca, client):
            exported = await tlsstaple.build(_context(
                "tlsstaple", tmp_path / "tls", clock, audit, listeners,
                {"ca": Granted(ca), "ocsp": Granted(client)}))
            assert exported == {}
            # Start returned before anything was issued; the endpoint
            # comes up behind it.
            await _brought_up()
            try:
                return await asyncio.to_thread(
                    client_handshake, tls_sock.getsockname()[1])
            finally:
                _stop_all()

    try:
        first = run(boot)
        out_first = capsys.readouterr().out
        second = run(boot)
        out_second = capsys.readouterr().out
    finally:
        _stop_all()
    chain = x509.load_pem_x509_certificates(
        (tmp_path / "tls" / tlsstaple.CHAIN_FILE).read_bytes())
    leaf, issuer = chain
    assert is_must_staple(leaf)
    sans = leaf.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert sans == ["staple.example.com"]
    response = ocsp.load_der_ocsp_response(first)
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert response.serial_number == leaf.serial_number
    assert issuer.subject == leaf.issuer
    assert "reused=no" in out_first and "health=ok" in out_first
    # The restart staples the cached response at once and keeps its
    # certificate: nothing new was issued.
    assert "reused=yes" in out_second
    assert second == first
    ops = [(e.service, e.operation, e.outcome) for e in audit.events]
    assert ops.count(("ca", "issue", "ok")) == 1
    assert ("ca", "narrow", "ok") in ops
    assert ("tlsstaple", "refresh", "ok") in ops
    assert ("tlsstaple", "loadCache", "ok") in ops
    assert "records=1 " in out_second


class RefusingCA(pki().CertificateAuthority.Server):  # type: ignore[misc]
    """Fault injection: a CA holder that refuses every narrowing."""

    def __init__(self) -> None:
        self.calls = 0

    async def narrow(self, **kwargs: Any) -> None:
        self.calls += 1
        raise CapabilityError("policyViolation",
                              "nameSubtrees: wider than this holder's")


def test_a_failed_bring_up_is_said_audited_and_tried_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    audit = MemoryAuditSink()
    clock = FakeClock(h.T0)
    refusing = RefusingCA()

    async def boot() -> int:
        tls_sock = _listener()
        listeners = {0: _listener(), tls_sock.getsockname()[1]: tls_sock}
        ctx = _context("tlsstaple", tmp_path / "tls", clock, audit,
                       listeners, {"ca": Granted(None),
                                   "ocsp": Granted(None)})
        ctx.settings["staplePollSeconds"] = "0.05"
        async with serve(refusing, pki().CertificateAuthority) as ca:
            ctx.grants["ca"] = Granted(ca)
            try:
                assert await tlsstaple.build(ctx) == {}
                await _until(lambda: refusing.calls >= 2)
                return refusing.calls
            finally:
                _stop_all(listeners)

    try:
        calls = run(boot)
    finally:
        _stop_all()
    out = capsys.readouterr().out
    assert calls >= 2  # tried again after the poll interval
    failed = [ln for ln in out.splitlines()
              if ln.startswith("CAPOS-STAPLE failed ")]
    assert failed and failed[0] == (
        "CAPOS-STAPLE failed policyViolation: nameSubtrees: wider than "
        "this holder's; retry in 0.05 s")
    assert "CAPOS-STAPLE serving" not in out
    starts = [e for e in audit.events if e.operation == "start"]
    assert starts and all(
        (e.service, e.outcome, e.reason) ==
        ("tlsstaple", "error", "policyViolation") for e in starts)
    assert not list((tmp_path / "tls").glob("*.pem"))  # nothing kept


@pytest.mark.parametrize(
    ("settings", "grants", "words"),
    [({"staplePort": "1"}, ("ca", "ocsp"), ["staplePort 1", "listens on"]),
     ({"staplePollSeconds": "0"}, ("ca", "ocsp"),
      ["staplePollSeconds 0", "above 0"]),
     ({}, ("ca",), ["no capability named 'ocsp'"])],
    ids=["port-not-listened", "poll-zero", "no-ocsp-grant"])
def test_a_bad_setting_or_missing_grant_still_fails_the_start(
        tmp_path: Path, settings: dict[str, str], grants: tuple[str, ...],
        words: list[str]) -> None:
    """What is wrong before anything is issued fails build() itself, so
    capos-init stops the boot with the reason, as before the endpoint
    came up in the background."""
    tls_sock = _listener()
    listeners = {0: _listener(), tls_sock.getsockname()[1]: tls_sock}
    ctx = _context("tlsstaple", tmp_path / "tls", FakeClock(h.T0),
                   MemoryAuditSink(), listeners,
                   {g: Granted(None) for g in grants})
    ctx.settings.update(settings)

    async def go() -> None:
        await tlsstaple.build(ctx)

    try:
        with pytest.raises(Exception) as info:
            run(go)
    finally:
        _stop_all(listeners)
    for word in words:
        assert word in str(info.value), str(info.value)
    assert not tlsstaple._RUNNING


def test_a_failure_after_issuance_is_retried_without_issuing_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Fault injection: the chain cannot be saved (its path is a
    directory). Each retry saves the pair this boot already issued;
    the CA is asked once."""
    audit = MemoryAuditSink()
    clock = FakeClock(h.T0)
    state = tmp_path / "tls"
    (state / tlsstaple.CHAIN_FILE).mkdir(parents=True)

    async def boot() -> int:
        ca_sock, tls_sock = _listener(), _listener()
        listeners = {ca_sock.getsockname()[1]: ca_sock,
                     tls_sock.getsockname()[1]: tls_sock}
        async with _ca_and_ocsp(tmp_path, clock, audit,
                                listeners) as (ca, client):
            ctx = _context("tlsstaple", state, clock, audit, listeners,
                           {"ca": Granted(ca), "ocsp": Granted(client)})
            ctx.settings["staplePollSeconds"] = "0.05"
            try:
                await tlsstaple.build(ctx)
                def starts() -> int:
                    return sum(1 for e in audit.events
                               if e.operation == "start")

                await _until(lambda: starts() >= 3)
                return starts()
            finally:
                _stop_all(listeners)

    try:
        failures = run(boot)
    finally:
        _stop_all()
    assert failures >= 3
    ops = [(e.service, e.operation, e.outcome) for e in audit.events]
    assert ops.count(("ca", "issue", "ok")) == 1
    out = capsys.readouterr().out
    assert "CAPOS-STAPLE failed internal: IsADirectoryError" in out
    assert not (state / tlsstaple.KEY_FILE).exists()  # chain first
