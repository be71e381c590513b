"""Field report 12 (a)-(d): the stapler against the project's responder
on 127.0.0.1, with an injected clock. R1 is the response at T0
(nextUpdate T0+2h); refresh is due at half its validity."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from services._runtime.audit import MemoryAuditSink
from services.ocsp.server import OcspHttpServer
from services.ocsp.stapler import StaplerCore, http_fetcher
from services.ocsp.transport import HttpTransport
from tests.services.ocsp.pkiworld import HOUR, T0, World, core_with, odd_signer

MINUTE = dt.timedelta(minutes=1)


def stapler(w: World, audit: MemoryAuditSink,
            cache: Path | None = None, *, must_staple: bool = True
            ) -> StaplerCore:
    core = StaplerCore(http_fetcher(HttpTransport(timeout=5)), w.clock,
                       audit, cache_dir=cache)
    core.set_certificate(w.leaf(must_staple=must_staple), w.ca.cert)
    return core


def ops(audit: MemoryAuditSink) -> list[tuple[str, str, str]]:
    return [(e.operation, e.outcome, e.reason) for e in audit.events]


def test_a_refreshed_at_half_validity(w: World) -> None:
    audit = MemoryAuditSink()
    s = stapler(w, audit)
    r1 = s.tick()
    assert r1 is not None and r1.this_update == T0
    w.clock.advance((HOUR - MINUTE).total_seconds())
    assert s.tick() is r1          # not yet due: no fetch
    assert w.server.answered == 1
    w.clock.advance(MINUTE.total_seconds())
    s.tick()                       # T0+1h: due
    w.clock.advance((HOUR / 2).total_seconds())
    served = s.current()           # T0+1.5h
    assert served is not None
    assert served.this_update >= T0 + HOUR
    assert served.der != r1.der
    assert ops(audit) == [("refresh", "ok", ""), ("refresh", "ok", "")]


def test_b_responder_down_serves_until_next_update_then_stops(
        w: World) -> None:
    audit = MemoryAuditSink()
    s = stapler(w, audit)
    r1 = s.tick()
    assert r1 is not None
    port = w.server.port
    w.clock.advance(HOUR.total_seconds())
    w.server.stop()                # the stub goes down at T0+1h
    assert s.tick() is r1
    assert s.health == "degraded"
    w.clock.set(T0 + 2 * HOUR - dt.timedelta(seconds=1))
    assert s.tick() is r1          # still before nextUpdate
    w.clock.set(T0 + 2 * HOUR)
    assert s.tick() is None        # never an expired staple
    assert s.current() is None
    assert s.health == "failing"
    stops = [e for e in audit.events if e.operation == "stopStapling"]
    assert [(e.outcome, e.reason) for e in stops] == [
        ("error", "mustStapleMissing")]
    assert [o[1] for o in ops(audit) if o[0] == "refresh"] == [
        "ok", "refused", "refused", "refused"]
    assert all(e.reason == "ocspUnavailable" for e in audit.events
               if e.operation == "refresh" and e.outcome == "refused")
    # The link comes back: the stapler recovers without a restart.
    back = OcspHttpServer(w.core.respond, w.clock, port=port).start()
    try:
        w.clock.advance(60)
        got = s.tick()
    finally:
        back.stop()
    assert got is not None and got.this_update == T0 + 2 * HOUR + MINUTE
    assert s.health == "ok"


def test_b_not_must_staple_stops_with_a_refusal(w: World) -> None:
    audit = MemoryAuditSink()
    s = stapler(w, audit, must_staple=False)
    s.tick()
    w.server.stop()
    w.clock.set(T0 + 2 * HOUR)
    assert s.tick() is None
    stops = [(e.outcome, e.reason) for e in audit.events
             if e.operation == "stopStapling"]
    assert stops == [("refused", "ocspUnavailable")]


@pytest.mark.parametrize("fault", ["other-serial", "unauthorised-signer",
                                   "no-eku-signer", "try-later"])
def test_c_bad_refresh_keeps_previous_staple(w: World, tmp_path: Path,
                                             fault: str) -> None:
    audit = MemoryAuditSink()
    s = stapler(w, audit)
    r1 = s.tick()
    assert r1 is not None
    other = w.leaf(["other.example.com"])
    if fault == "other-serial":
        w.server.answer = lambda req, now: w.respond(other, at=now)
    elif fault == "try-later":
        w.server.answer = lambda req, now: b"\x30\x03\x0a\x01\x03"  # tryLater
    else:
        from tests.services.ca import helpers as h

        rogue = h.open_ca(tmp_path / "rogue", name="Rogue CA")
        signer = (odd_signer(w.ca, eku=True,
                             signed_by=(rogue._key, rogue.cert))
                  if fault == "unauthorised-signer"
                  else odd_signer(w.ca, eku=False))
        bad = core_with(w, signer)
        w.server.answer = bad.respond
    w.clock.advance(HOUR.total_seconds())
    assert s.tick() is r1
    problem = {"other-serial": "ocspMismatch",
               "unauthorised-signer": "unauthorizedResponder",
               "no-eku-signer": "responderNotOcspSigning",
               "try-later": "unsuccessful"}[fault]
    last = audit.events[-1]
    assert (last.operation, last.outcome) == ("refresh", "refused")
    assert last.detail.startswith(problem)
    w.clock.set(T0 + 2 * HOUR)
    assert s.current() is None


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """A directory no one may write, root included (chattr +i)."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.chmod(0o500)
        try:
            yield
        finally:
            path.chmod(0o700)


def test_d_read_only_cache_is_a_warning_only(
        w: World, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "staples"
    cache.mkdir()
    audit = MemoryAuditSink()
    s = stapler(w, audit, cache)
    with read_only(cache), caplog.at_level(logging.WARNING,
                                           "services.ocsp.stapler"):
        served = s.tick()
    assert served is not None and served.status == "good"
    assert s.current() is served
    assert ops(audit) == [("refresh", "ok", "")]
    warnings = [r for r in caplog.records
                if r.name == "services.ocsp.stapler"]
    assert [r.levelname for r in warnings] == ["WARNING"]
    assert "not written" in warnings[0].getMessage()
    assert list(cache.iterdir()) == []


def test_cache_survives_a_restart(w: World, tmp_path: Path) -> None:
    cache = tmp_path / "staples"
    cache.mkdir()
    audit = MemoryAuditSink()
    s = stapler(w, audit, cache)
    r1 = s.tick()
    assert r1 is not None
    w.server.stop()
    again = StaplerCore(None, w.clock, audit, cache_dir=cache)
    again.set_certificate(s.leaf, w.ca.cert)  # type: ignore[arg-type]
    assert again.current() is not None
    assert again.current().der == r1.der  # type: ignore[union-attr]
    assert audit.events[-1].operation == "loadCache"


def test_never_staples_a_response_already_past_next_update(
        w: World) -> None:
    """The client side tolerates the skew; the serving side never does:
    a response whose nextUpdate passed two minutes ago is not stapled."""
    audit = MemoryAuditSink()
    s = stapler(w, audit)
    w.server.answer = lambda req, now: w.core.respond(
        req, now - 2 * HOUR - 2 * MINUTE)
    assert s.tick() is None
    assert s.peek() is None
    assert s.health == "failing"
    assert ops(audit) == [("refresh", "refused", "ocspUnavailable")]
    assert audit.events[-1].detail.startswith("ocspStale:")
