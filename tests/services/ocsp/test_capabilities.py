"""OcspResponder and OcspStapler as capabilities over two-party RPC,
against the project's responder on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from services._runtime.audit import MemoryAuditSink
from services._runtime.boundary import parse_remote
from services._runtime.clock import epoch_seconds
from services._runtime.schema import pki
from services.ocsp.responder_impl import OcspResponderImpl
from services.ocsp.stapler import StaplerCore
from services.ocsp.stapler_impl import OcspStaplerImpl
from services.ocsp.transport import HttpTransport
from services.x509.certificate_impl import CertificateImpl
from services.x509.chain_impl import CertificateChainImpl
from services.x509.model import parse_certificate
from tests.services.ocsp.pkiworld import HOUR, T0, World
from tests.services.x509.rpc import run, serve


def cert_cap(der: bytes) -> Any:
    return CertificateImpl(parse_certificate(der))


def der(cert: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return bytes(cert.public_bytes(Encoding.DER))


def test_responder_status_good_revoked_and_refusal(w: World) -> None:
    audit = MemoryAuditSink()
    good, bad = w.leaf(), w.leaf(["bad.example.com"])
    w.ca.revoke(bad.serial_number, "cessationOfOperation", T0 - HOUR)
    impl = OcspResponderImpl(HttpTransport(), audit=audit, clock=w.clock)

    async def main() -> tuple[Any, Any, tuple[str, str]]:
        async with serve(impl, pki().OcspResponder) as cap:
            issuer = cert_cap(w.ca.cert_der)
            a = (await cap.status(cert_cap(der(good)), issuer, 0)).response
            b = (await cap.status(cert_cap(der(bad)), issuer, 0)).response
            late = epoch_seconds(T0 + 3 * HOUR)
            w.server.stop()
            with pytest.raises(Exception) as err:
                await cap.status(cert_cap(der(good)), issuer, late)
            return ((str(a.status), a.thisUpdate, a.nextUpdate),
                    (str(b.status), b.revocationTime,
                     str(b.revocationReason)),
                    parse_remote(err.value))

    a, b, (reason, detail) = run(main)
    assert a == ("good", epoch_seconds(T0), epoch_seconds(T0 + 2 * HOUR))
    assert b == ("revoked", epoch_seconds(T0 - HOUR),
                 "cessationOfOperation")
    assert reason == "ocspUnavailable"
    assert detail.startswith("unreachable:")
    assert [(e.operation, e.outcome, e.reason) for e in audit.events] == [
        ("status", "ok", ""), ("status", "ok", ""),
        ("status", "refused", "ocspUnavailable")]


def test_stapler_capability_serves_then_stops(w: World) -> None:
    audit = MemoryAuditSink()
    leaf = w.leaf(must_staple=True)
    responder = OcspResponderImpl(HttpTransport(), audit=audit,
                                  clock=w.clock)
    stapler = OcspStaplerImpl(StaplerCore(None, w.clock, audit))
    chain = CertificateChainImpl([parse_certificate(der(leaf)),
                                  parse_certificate(w.ca.cert_der)])

    async def main() -> list[tuple[str, int, bool]]:
        seen = []
        async with serve(responder, pki().OcspResponder) as r, \
                serve(stapler, pki().OcspStapler) as s:
            await s.setCertificate(chain, r)
            for step in (0, 1, 0.5):
                w.clock.advance(step * HOUR.total_seconds())
                if step == 0.5:
                    w.server.stop()
                got = (await s.currentResponse()).response
                seen.append((str(got.status), got.thisUpdate,
                             stapler.current_der() == bytes(got.der)))
            w.clock.set(T0 + 3 * HOUR + dt.timedelta(minutes=1))
            got = (await s.currentResponse()).response
            seen.append((str(got.status), got.thisUpdate, not got.der))
        return seen

    seen = run(main)
    assert seen == [
        ("good", epoch_seconds(T0), True),
        ("good", epoch_seconds(T0 + HOUR), True),
        ("good", epoch_seconds(T0 + HOUR), True),
        ("stapledAbsent", 0, True)]
    stops = [e for e in audit.events if e.operation == "stopStapling"]
    assert [(e.outcome, e.reason) for e in stops] == [
        ("error", "mustStapleMissing")]


def test_maintain_refreshes_in_the_background(w: World) -> None:
    audit = MemoryAuditSink()
    leaf = w.leaf()
    responder = OcspResponderImpl(HttpTransport(), audit=audit,
                                  clock=w.clock)
    stapler = OcspStaplerImpl(StaplerCore(None, w.clock, audit))
    chain = CertificateChainImpl([parse_certificate(der(leaf)),
                                  parse_certificate(w.ca.cert_der)])
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)
        w.clock.advance(seconds)

    async def main() -> int:
        async with serve(responder, pki().OcspResponder) as r:
            await stapler.attach(pki().CertificateChain._new_client(chain),
                                 r)
            await stapler.maintain(fake_sleep, poll=1800, rounds=6)
        held = stapler.core.current()
        assert held is not None
        return epoch_seconds(held.this_update)

    this_update = run(main)
    # Six rounds of at most 30 minutes: refreshed at T0+1h and T0+2h,
    # always holding a staple younger than half its validity.
    assert waits == [1800, 1800, 1800, 1800, 1800, 1800]
    assert this_update == epoch_seconds(T0 + 2 * HOUR)
    refreshes = [e for e in audit.events
                 if e.operation == "refresh" and e.outcome == "ok"]
    assert len(refreshes) == 3
