"""Renewal schedule values (pure policy, seeded jitter), Retry-After and
backoff values, RFC 9773 renewal info through an injected response, and
the Renewer renewing into a CertificateStore on a fake clock."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services._runtime.audit import MemoryAuditSink
from services._runtime.clock import FakeClock, SystemClock
from services._runtime.schema import pki
from services.acme import policy
from services.acme.client_impl import AcmeClientImpl, ari_cert_id
from services.acme.renewal import Binding, RenewalScheduler, Renewer
from services.certstore.disk import DiskBackend
from services.certstore.store_impl import CertificateStoreImpl
from services.gateway.solver_impl import ChallengeTable, Http01SolverImpl
from services.keys.private_key_impl import PrivateKeyImpl
from services.x509.chain_impl import CertificateChainImpl
from services.x509.model import parse_certificate
from tests.services.acme.harness import (
    T0,
    FakeSleep,
    client_for,
    ders_of,
    http01_port,
    leaf_of,
    served,
)
from tests.services.acme.scripted import (
    DIRECTORY,
    Reply,
    ScriptedAcme,
    anchor_der,
)
from tests.services.x509.rpc import run, serve
from tools.pebble import Pebble

DAY = dt.timedelta(days=1)


def cert(days: float, start: dt.datetime = T0,
         serial: int = 0x1234) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "r")])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.AuthorityKeyIdentifier(
                b"\x01\x02\x03\x04", None, None), False)
            .sign(key, hashes.SHA256()))


def u(seed: int) -> float:
    return random.Random(seed).random()


@pytest.mark.parametrize(("days", "left"), [
    (90, 30), (30, 10), (11, 11 / 3), (10, 5), (6, 3), (1, 0.5)])
def test_threshold_third_left_or_half_for_ten_days_or_less(
        days: float, left: float) -> None:
    na = T0 + dt.timedelta(days=days)
    assert policy.renewal_threshold(T0, na) == na - dt.timedelta(days=left)


def test_renewal_time_is_jittered_earlier_by_the_seed() -> None:
    na = T0 + 90 * DAY
    got = policy.renewal_time(T0, na, random.Random(7))
    assert got == T0 + 60 * DAY - 90 * DAY * (0.05 * u(7))
    assert T0 + 60 * DAY - 4.5 * DAY <= got <= T0 + 60 * DAY
    # Different seeds spread; no seed renews later than the threshold.
    times = {policy.renewal_time(T0, na, random.Random(s))
             for s in range(50)}
    assert len(times) == 50
    assert max(times) <= T0 + 60 * DAY


def test_ari_window_earlier_than_own_wins() -> None:
    na = T0 + 90 * DAY
    window = policy.RenewalWindow(T0 + 10 * DAY, T0 + 12 * DAY)
    rng = random.Random(3)
    got = policy.renewal_time(T0, na, rng, window)
    check = random.Random(3)
    check.random()
    assert got == T0 + 10 * DAY + dt.timedelta(
        seconds=2 * 86400 * check.random())
    assert window.start <= got <= window.end


def test_ari_window_later_than_own_is_not_followed() -> None:
    na = T0 + 90 * DAY
    window = policy.RenewalWindow(T0 + 70 * DAY, T0 + 75 * DAY)
    got = policy.renewal_time(T0, na, random.Random(7), window)
    assert got == policy.renewal_time(T0, na, random.Random(7))


def test_backoff_after_failures_doubles_and_caps() -> None:
    na = T0 + 90 * DAY
    waits = [policy.retry_after_failure(n, T0, na, random.Random(1)) - T0
             for n in range(1, 10)]
    scale = 1 - 0.1 * u(1)
    minutes = [5, 10, 20, 40, 80, 160, 320, 360, 360]
    assert waits == [dt.timedelta(minutes=m) * scale for m in minutes]


def test_backoff_never_waits_past_half_the_time_left() -> None:
    na = T0 + dt.timedelta(hours=2)
    got = policy.retry_after_failure(9, T0, na, random.Random(1)) - T0
    assert got == dt.timedelta(hours=1) * (1 - 0.1 * u(1))


def test_no_storm_at_boot_overdue_certificates_get_their_own_slots() -> None:
    clock = FakeClock(T0 + 100 * DAY)
    sched = RenewalScheduler(clock, random.Random(5))
    certs: dict[str, Any] = {
        f"h{i:02d}": (cert(90, T0 + dt.timedelta(hours=i)), None)
        for i in range(40)}
    certs["fresh"] = (cert(90, T0 + 99 * DAY), None)
    times = sched.boot(certs)
    now = clock.now()
    overdue = sorted((t, h) for h, t in times.items() if h != "fresh")
    # The one expiring soonest (the oldest) first, one per 30 s slot.
    assert [h for _, h in overdue] == [f"h{i:02d}" for i in range(40)]
    for slot, (at, _) in enumerate(overdue):
        assert now + policy.BOOT_SPACING * slot <= at
        assert at < now + policy.BOOT_SPACING * (slot + 1)
    assert times["fresh"] > now + 50 * DAY
    assert sched.due() == []
    clock.advance(31)
    assert len(sched.due()) in (1, 2)


def test_scheduler_failure_then_success() -> None:
    clock = FakeClock(T0 + 61 * DAY)
    sched = RenewalScheduler(clock, random.Random(2))
    sched.track("gw", cert(90))
    assert sched.due() == ["gw"]
    entry = sched.failed("gw")
    assert entry.failures == 1
    assert entry.at - clock.now() == dt.timedelta(minutes=5) * (
        1 - 0.1 * _second(2))
    assert sched.due() == []
    fresh = sched.track("gw", cert(90, clock.now()))
    assert fresh.failures == 0
    assert fresh.at > clock.now() + 55 * DAY


def _second(seed: int) -> float:
    rng = random.Random(seed)
    rng.random()
    return rng.random()


@pytest.mark.parametrize(("value", "seconds"), [
    ("2", 2.0), ("0", 0.0), ("86400", 86400.0),
    ("Wed, 21 Oct 2026 07:28:00 GMT", 1680.0),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    (None, None), ("soon", None), ("-5", None)])
def test_retry_after_forms(value: str | None,
                           seconds: float | None) -> None:
    assert policy.parse_retry_after(value, T0) == seconds


def test_poll_wait_backoff_and_timeout() -> None:
    assert [policy.backoff(n) for n in range(7)] == [
        1.0, 2.0, 4.0, 8.0, 16.0, 16.0, 16.0]
    assert policy.poll_wait(0, None, 0.0) == 0.05
    assert policy.poll_wait(1, None, 0.05) == 1.0
    assert policy.poll_wait(4, None, 3.05) == 8.0
    assert policy.poll_wait(3, 7.0, 10.0) == 7.0
    assert policy.poll_wait(6, None, 50.0) is None
    assert policy.poll_wait(0, 61.0, 0.0) is None


def test_ari_cert_id_rfc9773_example_shape() -> None:
    c = cert(90, serial=0x87654321)
    der = c.public_bytes(serialization.Encoding.DER)
    # AKI 01020304 -> AQIDBA; serial 0x87654321 needs a leading zero.
    assert ari_cert_id(der) == "AQIDBA.AIdlQyE"


def test_renewal_info_from_an_injected_response() -> None:
    """Pebble 2.4 serves no renewalInfo; the ARI path runs against a
    scripted directory that does."""
    server = ScriptedAcme()
    c = cert(90)
    der = c.public_bytes(serialization.Encoding.DER)
    clock = FakeClock(T0)
    impl = AcmeClientImpl(DIRECTORY, [anchor_der()], clock,
                          MemoryAuditSink(), sleep=FakeSleep(clock),
                          adapter=lambda ctx: server)
    directory = server._default("GET", "/dir").body
    server.queue("/dir", Reply(200, {
        **directory, "renewalInfo": "https://acme.test/ari"}))
    server.queue(f"/ari/{ari_cert_id(der)}", Reply(200, {
        "suggestedWindow": {"start": "2026-11-01T00:00:00Z",
                            "end": "2026-11-02T00:00:00Z"}}))
    window = run(lambda: impl.renewal_window(der))
    assert window == policy.RenewalWindow(
        dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 2, tzinfo=dt.UTC))
    sched = RenewalScheduler(clock, random.Random(4))
    entry = sched.track("gw", c, window)
    assert window.start <= entry.at <= window.end
    assert entry.at < policy.renewal_threshold(
        c.not_valid_before_utc, c.not_valid_after_utc)


def test_no_renewal_info_without_the_directory_field() -> None:
    server = ScriptedAcme()
    clock = FakeClock(T0)
    impl = AcmeClientImpl(DIRECTORY, [anchor_der()], clock,
                          MemoryAuditSink(), adapter=lambda ctx: server)
    der = cert(90).public_bytes(serialization.Encoding.DER)
    assert run(lambda: impl.renewal_window(der)) is None
    assert not [e for e in server.log if e.path.startswith("/ari")]


def test_renewer_renews_into_the_store_with_backoff(tmp_path: Path) -> None:
    with Pebble(tmp_path / "logs", authz_reuse=0) as peb:
        _renewer_run(peb, tmp_path)


def _renewer_run(pebble: Pebble, tmp_path: Path) -> None:
    """A certificate from pebble, stored and adopted; at its renewal time
    the first attempt fails (no http-01 responder: pebble marks the
    authorization invalid) and backs off; the retry renews, the store
    rotates, its watcher sees the new chain. Audit records throughout.

    The first certificate comes through another client and account (as
    one kept from an earlier boot would): pebble reuses a valid
    authorization of the same account one order in a hundred even at
    PEBBLE_AUTHZREUSE=0 (it makes a new one when ``rand.Intn(100) >
    percent``), and a reused one would let the first renewal pass with
    no validation; the renewing account has none to reuse."""
    audit = MemoryAuditSink()
    table = ChallengeTable()
    issuer = client_for(pebble, MemoryAuditSink(), SystemClock())
    impl = client_for(pebble, audit, SystemClock())
    fake = FakeClock(T0)
    st = CertificateStoreImpl(fake, audit, wait_seconds=0.05,
                              backend=DiskBackend(tmp_path / "store"))

    def new_key() -> PrivateKeyImpl:
        return PrivateKeyImpl(ec.generate_private_key(ec.SECP256R1()))

    async def go() -> dict[str, Any]:
        async with served(issuer) as first_acme, served(impl) as acme, \
                serve(st, pki().CertificateStore) as store:
            first_account = (await first_acme.register(
                accountKey=new_key(), contact=[])).account
            await acme.register(accountKey=new_key(), contact=[])
            key = new_key()
            solver = Http01SolverImpl(table)
            async with http01_port(pebble, table):
                chain = (await first_acme.order(
                    account=first_account,
                    identifiers=[{"type": "dns", "value": "r.capos.test"}],
                    certKey=key, solver=solver)).chain
            await store.put(handle="gw", chain=chain)
            first = await ders_of(chain)
            sub = (await store.watch(handle="gw")).subscription
            (await sub.events())  # the current chain
            renewer = Renewer(acme, store, RenewalScheduler(
                fake, random.Random(9)), fake, audit,
                window_of=impl.renewal_window)
            entry = await renewer.adopt("gw", Binding(key, solver))
            fake.set(entry.at)
            failed = await renewer.tick()
            retry = renewer._scheduler.entries["gw"]
            fake.set(retry.at)
            async with http01_port(pebble, table):
                ok = await renewer.tick()
            events = (await sub.events()).events
            rotated = [await ders_of(e.newChain) for e in events]
            return {"first": first, "entry": entry, "failed": failed,
                    "retry": retry, "ok": ok, "rotated": rotated,
                    "stored": await ders_of(
                        (await store.get(handle="gw")).chain)}

    got = run(go)
    leaf = leaf_of(got["first"])
    assert got["entry"].at <= policy.renewal_threshold(
        leaf.not_valid_before_utc, leaf.not_valid_after_utc)
    assert got["failed"] == [("gw", "error")]
    assert got["retry"].failures == 1
    assert got["retry"].at - got["entry"].at <= dt.timedelta(minutes=5)
    assert got["ok"] == [("gw", "ok")]
    assert got["rotated"] == [got["stored"]]
    assert got["stored"] != got["first"]
    records = [(e.service, e.capability, e.operation, e.outcome, e.reason)
               for e in audit.events]
    assert ("acme", "renewer", "schedule", "ok", "") in records
    assert ("acme", "renewer", "renew", "error",
            "acmeOrderInvalid") in records
    assert ("acme", "acmeClient", "renew", "ok", "") in records
    assert ("acme", "renewer", "renew", "ok", "") in records
    assert ("certstore", "certStore", "rotate", "ok", "") in records


def test_renewal_info_over_the_capability_boundary() -> None:
    """``AcmeClient.renewalInfo``: the window a holder of the client
    capability (the gateway's Renewer) schedules by; ``offered`` false
    without the directory field."""
    server = ScriptedAcme()
    c = cert(90)
    der = c.public_bytes(serialization.Encoding.DER)
    clock = FakeClock(T0)
    impl = AcmeClientImpl(DIRECTORY, [anchor_der()], clock,
                          MemoryAuditSink(), adapter=lambda ctx: server)
    chain = CertificateChainImpl([parse_certificate(der)])

    async def ask() -> tuple[bool, int, int]:
        async with serve(impl, pki().AcmeClient) as acme:
            r = await acme.renewalInfo(chain=chain)
            return r.offered, r.startEpochSeconds, r.endEpochSeconds

    assert run(ask) == (False, 0, 0)
    directory = server._default("GET", "/dir").body
    impl._directory = None
    server.queue("/dir", Reply(200, {
        **directory, "renewalInfo": "https://acme.test/ari"}))
    server.queue(f"/ari/{ari_cert_id(der)}", Reply(200, {
        "suggestedWindow": {"start": "2026-11-01T00:00:00Z",
                            "end": "2026-11-02T00:00:00Z"}}))
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert run(ask) == (True, int(start.timestamp()),
                        int(start.timestamp()) + 86400)
