"""PinSet: modes, expiry, pins on the verified path, audit; the core and
the capability over two-party RPC."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from services._runtime.audit import AuditEvent, MemoryAuditSink
from services._runtime.clock import FakeClock, epoch_seconds
from services._runtime.schema import pki
from services.x509.boundary import reason_of
from services.x509.errors import PolicyRejectedError
from services.x509.model import parse_certificate
from services.x509.pinning import Pin, PinSetCore, decide
from services.x509.pinset_impl import PinSetImpl
from services.x509.policy import WEB_PKI_LENIENT
from services.x509.trust import Anchor, TrustStoreCore
from services.x509.truststore_impl import TrustStoreImpl
from services.x509.verifier_impl import CertVerifierImpl
from tests.services.x509 import pkifactory as f
from tests.services.x509.rpc import run, serve
from tests.services.x509.test_verifier import chain_of


def pin_of(issued: f.Issued, alg: str = "sha256") -> Pin:
    return Pin.of(parse_certificate(issued.der), alg)


@dataclasses.dataclass
class Enforced:
    which: str
    reason: str
    detail: str
    events: list[AuditEvent]


def enforce(pins: list[Pin], ders: list[bytes], *, mode: str = "enforce",
            expires_in: float | None = None, advance: float = 0,
            roots: tuple[f.Issued, ...] = ()) -> Enforced:
    h = f.hierarchy()
    clock = FakeClock(f.T0)
    audit = MemoryAuditSink()
    expires = (f.T0 + dt.timedelta(seconds=expires_in)
               if expires_in is not None else None)
    trust = TrustStoreImpl(TrustStoreCore(
        Anchor(parse_certificate(r.der), "root") for r in roots or (h.root,)))
    verifier = CertVerifierImpl(WEB_PKI_LENIENT, audit=audit, clock=clock)
    clock.advance(advance)

    async def main() -> Enforced:
        async with serve(verifier, pki().CertVerifier) as v, \
                serve(trust, pki().TrustStore) as t:
            pinset = PinSetImpl(
                PinSetCore(pins, mode=mode, expires=expires), verifier=v,
                trust=t, purpose="tlsServerAuth", hostname=f.HOST,
                audit=audit, clock=clock, name="servicePins")
            async with serve(pinset, pki().PinSet) as ps:
                out = (await ps.enforce(chain_of(*ders))).outcome
                if out.which() == "valid":
                    return Enforced("valid", "", "", audit.events)
                return Enforced("invalid", str(out.invalid.reason),
                                out.invalid.detail, audit.events)

    return run(main)


def pin_events(result: Enforced) -> list[AuditEvent]:
    return [e for e in result.events if e.operation == "enforce"]


@pytest.mark.parametrize("which", ["leaf", "inter", "root"])
def test_pin_on_any_certificate_of_the_verified_path_passes(
        which: str) -> None:
    h = f.hierarchy()
    result = enforce([pin_of(getattr(h, which))], h.chain)
    assert result.which == "valid"
    [event] = pin_events(result)
    assert (event.outcome, event.reason, event.capability) == (
        "ok", "", "servicePins")
    assert "matches" in event.detail


def test_enforce_mode_mismatch_is_pin_mismatch() -> None:
    h = f.hierarchy()
    other = f.hierarchy("B")
    result = enforce([pin_of(other.root)], h.chain)
    assert (result.which, result.reason) == ("invalid", "pinMismatch")
    assert "none of 1 pins match the verified path of 3" in result.detail
    [event] = pin_events(result)
    assert (event.outcome, event.reason) == ("refused", "pinMismatch")


def test_pin_on_a_certificate_only_sent_by_the_peer_does_not_match() -> None:
    h = f.hierarchy()
    pinned = f.hierarchy("Pinned")
    # The peer appends the pinned CA; it is not on the verified path.
    result = enforce([pin_of(pinned.inter)],
                     [h.leaf.der, h.inter.der, pinned.inter.der])
    assert (result.which, result.reason) == ("invalid", "pinMismatch")


def test_report_only_mismatch_passes_and_is_audited() -> None:
    h = f.hierarchy()
    result = enforce([pin_of(f.hierarchy("B").root)], h.chain,
                     mode="reportOnly")
    assert result.which == "valid"
    [event] = pin_events(result)
    assert (event.outcome, event.reason) == ("ok", "pinMismatch")
    assert "(report-only)" in event.detail
    assert "mode=reportOnly" in event.detail
    assert len(event.subject) == 3


def test_expired_pin_set_no_longer_enforces_and_says_so() -> None:
    h = f.hierarchy()
    wrong = [pin_of(f.hierarchy("B").root)]
    live = enforce(wrong, h.chain, expires_in=3600)
    expired = enforce(wrong, h.chain, expires_in=3600, advance=3600)
    assert (live.which, live.reason) == ("invalid", "pinMismatch")
    assert expired.which == "valid"
    [event] = pin_events(expired)
    assert (event.outcome, event.reason) == ("ok", "")
    assert "pin set expired at" in event.detail
    assert "not enforced" in event.detail


def test_chain_that_does_not_verify_keeps_its_reason() -> None:
    h = f.hierarchy()
    result = enforce([pin_of(h.leaf)], h.chain,
                     roots=(f.hierarchy("B").root,))
    assert (result.which, result.reason) == ("invalid", "unknownAnchor")
    [event] = pin_events(result)
    assert (event.outcome, event.reason) == ("refused", "unknownAnchor")


def test_empty_enforcing_pin_set_fails_closed() -> None:
    h = f.hierarchy()
    result = enforce([], h.chain)
    assert (result.which, result.reason) == ("invalid", "pinMismatch")
    assert result.detail.startswith("no pins match")


def test_sha384_and_sha512_pins_match() -> None:
    h = f.hierarchy()
    for alg in ("sha384", "sha512"):
        assert enforce([pin_of(h.inter, alg)], h.chain).which == "valid"


def test_pin_core_refuses_weak_or_malformed_pins() -> None:
    with pytest.raises(PolicyRejectedError) as weak:
        Pin("sha1", b"\x00" * 20)
    with pytest.raises(PolicyRejectedError) as short:
        Pin("sha256", b"\x00" * 31)
    assert weak.value.reason.value == "weakAlgorithm"
    assert short.value.reason.value == "policyViolation"


def test_decide_is_pure_on_the_path_given() -> None:
    h = f.hierarchy()
    path = [parse_certificate(d) for d in (*h.chain, h.root.der)]
    core = PinSetCore([pin_of(h.root)], mode="reportOnly")
    decision = decide(core, path, f.T0)
    assert (decision.verdict, decision.passes, decision.matched) == (
        "match", True, pin_of(h.root))
    miss = decide(core, path[:2], f.T0)
    assert (miss.verdict, miss.enforced, miss.passes) == (
        "mismatch", False, True)


def _pinset(core: PinSetCore, audit: MemoryAuditSink, *,
            writable: bool) -> PinSetImpl:
    return PinSetImpl(core, verifier=None, trust=None,
                      purpose="tlsServerAuth", hostname=f.HOST, audit=audit,
                      clock=FakeClock(f.T0), writable=writable)


def _schema_pin(pin: Pin) -> Any:
    msg = pki().Pin.new_message()
    msg.spkiHash = pin.spki_hash
    msg.hashAlgorithm = pin.hash_algorithm
    return msg


def test_pins_add_remove_info_and_read_only_view() -> None:
    h = f.hierarchy()
    audit = MemoryAuditSink()
    core = PinSetCore([pin_of(h.root)], mode="reportOnly",
                      expires=f.T0 + f.DAY)
    rw = _pinset(core, audit, writable=True)

    async def main() -> tuple[Any, ...]:
        async with serve(rw, pki().PinSet) as w, \
                serve(rw.read_only(), pki().PinSet) as ro:
            await w.addPin(_schema_pin(pin_of(h.inter)))
            after_add = [(str(p.hashAlgorithm), bytes(p.spkiHash))
                         for p in (await ro.pins()).entries]
            with pytest.raises(Exception) as refused:
                await ro.removePin(_schema_pin(pin_of(h.root)))
            await w.removePin(_schema_pin(pin_of(h.root)))
            after_remove = len((await ro.pins()).entries)
            bad = _schema_pin(pin_of(h.root))
            bad.hashAlgorithm = "sha1"
            bad.spkiHash = b"\x00" * 20
            with pytest.raises(Exception) as weak:
                await w.addPin(bad)
            info = await ro.info()
            return (after_add, reason_of(refused.value), after_remove,
                    reason_of(weak.value)[0], str(info.mode), info.expires)

    after_add, refused, after_remove, weak, mode, expires = run(main)
    assert sorted(after_add) == sorted(
        ("sha256", p.spki_hash) for p in (pin_of(h.root), pin_of(h.inter)))
    assert refused == ("policyViolation",
                       "read-only pin set: removePin needs the write "
                       "capability")
    assert after_remove == 1
    assert weak == "weakAlgorithm"
    assert (mode, expires) == ("reportOnly", epoch_seconds(f.T0 + f.DAY))
    assert [(e.operation, e.outcome) for e in audit.events] == [
        ("addPin", "ok"), ("removePin", "refused"), ("removePin", "ok"),
        ("addPin", "refused")]
