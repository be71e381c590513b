"""Revocation inside the CertVerifier, over real capabilities (issue 5;
DESIGN.md section 6; RFC 6960, RFC 7633; field report 12e).

The private CA of services/ca issues the leaves, its OCSP responder
(services/ocsp, on 127.0.0.1) signs the staples and answers the
verifier's ``OcspResponder`` capability, and its CRL feeds a
``CrlStore``. The verifier, the responder capability and the CRL store
each run over their own two-party capnp connection; time is the
world's injected clock. Each test asserts the outcome, the
FailureReason, the detail and the audit record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from services._runtime.audit import AuditEvent, MemoryAuditSink
from services._runtime.host import ServiceContext
from services._runtime.schema import pki
from services.ca import policy as ca_policy
from services.ca.model import IssuancePolicy, parse_request
from services.crl.store_impl import CrlCache, CrlStoreImpl
from services.crl.transport import CallableCrlSource
from services.ocsp.model import StatusAnswer
from services.ocsp.responder import ResponderCore, ca_signer
from services.ocsp.responder_impl import OcspResponderImpl
from services.ocsp.staple_tls import StaplingTLSServer, client_handshake
from services.ocsp.stapler import StaplerCore
from services.ocsp.stapler_impl import OcspStaplerImpl
from services.ocsp.transport import HttpTransport
from services.verifier import service as verifier_service
from services.x509.chain_impl import CertificateChainImpl
from services.x509.model import parse_certificate
from services.x509.policy import WEB_PKI_LENIENT, VerificationPolicy
from services.x509.trust import Anchor, TrustStoreCore
from services.x509.truststore_impl import TrustStoreImpl
from services.x509.verifier_impl import CertVerifierImpl
from tests.services.ca import helpers as h
from tests.services.ocsp.pkiworld import (
    HOUR,
    T0,
    World,
    core_with,
    odd_signer,
    world,
)
from tests.services.x509.rpc import run, serve

HOST = "www.example.com"
SOFT = WEB_PKI_LENIENT
HARD = dataclasses.replace(WEB_PKI_LENIENT, require_ocsp=True)
STAPLING = dataclasses.replace(WEB_PKI_LENIENT, stapling_required=True)


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    yield from world(tmp_path / "ca")


@dataclasses.dataclass
class Outcome:
    which: str
    reason: str
    detail: str
    ocsp_status: str
    audit: MemoryAuditSink
    revocation: str = ""

    def event(self, operation: str) -> AuditEvent:
        """The one verifier record of ``operation``."""
        [event] = [e for e in self.audit.events
                   if e.capability == "rev" and e.operation == operation]
        return event


def verify(w: World, leaf: x509.Certificate, *,
           policy: VerificationPolicy = SOFT, staple: bytes | None = None,
           responder: bool = False, crl: bytes | None = None,
           purpose: str = "tlsServerAuth", host: str = HOST) -> Outcome:
    """One verification over RPC; ``staple`` None calls verifyChain."""
    audit = MemoryAuditSink()

    async def main() -> Outcome:
        async with contextlib.AsyncExitStack() as stack:
            ocsp = None
            if responder:
                ocsp = await stack.enter_async_context(serve(
                    OcspResponderImpl(HttpTransport(), audit=audit,
                                      clock=w.clock),
                    pki().OcspResponder))
            crls = None
            if crl is not None:
                held = crl
                crls = await stack.enter_async_context(serve(
                    CrlStoreImpl(CrlCache([w.ca.cert], CallableCrlSource(
                        lambda _issuer: held), w.clock),
                        audit=audit, clock=w.clock),
                    pki().CrlStore))
            impl = CertVerifierImpl(policy, audit=audit, clock=w.clock,
                                    name="rev", crl_store=crls,
                                    ocsp_responder=ocsp)
            verifier = await stack.enter_async_context(
                serve(impl, pki().CertVerifier))
            chain = CertificateChainImpl([parse_certificate(
                leaf.public_bytes(Encoding.DER))])
            trust = TrustStoreImpl(TrustStoreCore((Anchor(
                parse_certificate(w.ca.cert_der), "private root"),)))
            if staple is None:
                reply = await verifier.verifyChain(chain, trust, purpose,
                                                   0, host)
            else:
                reply = await verifier.verifyChainWithStaple(
                    chain, trust, purpose, 0, host, staple)
            out = reply.outcome
            if out.which() == "valid":
                return Outcome("valid", "", "", str(out.valid.ocspStatus),
                               audit, out.valid.revocation)
            return Outcome("invalid", str(out.invalid.reason),
                           out.invalid.detail, "", audit)

    return run(main)


def crl_der(w: World) -> bytes:
    return w.ca.crl().public_bytes(Encoding.DER)


# --- stapled responses ------------------------------------------------

def test_good_staple_passes_with_ocsp_status_good(w: World) -> None:
    leaf = w.leaf()
    got = verify(w, leaf, policy=HARD, staple=w.respond(leaf))
    assert (got.which, got.ocsp_status) == ("valid", "good")
    assert got.revocation == "ocspStaple"
    event = got.event("verifyChainWithStaple")
    assert (event.outcome, event.reason) == ("ok", "")
    assert "revocation=ocspStaple ocspStatus=good" in event.detail
    assert "staple=yes" in event.detail


def test_revoked_staple_fails_with_time_and_reason(w: World) -> None:
    leaf = w.leaf()
    when = T0 + dt.timedelta(minutes=30)
    w.ca.revoke(leaf.serial_number, "keyCompromise", when)
    w.clock.advance(HOUR.total_seconds())
    got = verify(w, leaf, staple=w.respond(leaf))
    assert (got.which, got.reason) == ("invalid", "revoked")
    assert when.isoformat() in got.detail
    assert "keyCompromise" in got.detail
    assert got.detail.startswith("revoked: ocspStaple: revoked at")
    event = got.event("verifyChainWithStaple")
    assert (event.outcome, event.reason) == ("refused", "revoked")
    assert when.isoformat() in event.detail


def test_expired_staple_is_stale(w: World) -> None:
    leaf = w.leaf()
    staple = w.respond(leaf)                # thisUpdate T0, next T0+2h
    w.clock.advance((3 * HOUR).total_seconds())
    got = verify(w, leaf, policy=HARD, staple=staple)
    # The evidence module maps ocspStale onto ocspUnavailable.
    assert (got.which, got.reason) == ("invalid", "ocspUnavailable")
    assert "ocspStale" in got.detail
    assert got.detail.startswith("noEvidence: requireOcsp:")
    # Without requireOcsp the stale staple is no evidence: soft-fail,
    # and the outcome and the audit record say so.
    soft = verify(w, leaf, staple=staple)
    assert (soft.which, soft.ocsp_status) == ("valid",
                                              "responderUnreachable")
    detail = soft.event("verifyChainWithStaple").detail
    assert "revocation soft-fail" in detail
    assert "ocspStaple unusable: ocspStale" in detail


def test_staple_for_another_serial_fails(w: World) -> None:
    leaf, other = w.leaf(), w.leaf(["other.example.com"])
    got = verify(w, leaf, policy=HARD, staple=w.respond(other))
    assert (got.which, got.reason) == ("invalid", "ocspUnavailable")
    assert "ocspMismatch" in got.detail


def test_staple_from_a_signer_without_ocsp_signing_fails(w: World) -> None:
    leaf = w.leaf(must_staple=True)
    rogue = core_with(w, odd_signer(w.ca, eku=False))
    got = verify(w, leaf, staple=w.respond(leaf, rogue))
    assert (got.which, got.reason) == ("invalid", "ocspUnavailable")
    assert "stapled response unusable" in got.detail
    assert "responderNotOcspSigning" in got.detail


# --- must-staple and staplingRequired ---------------------------------

def test_must_staple_without_staple_fails(w: World) -> None:
    leaf = w.leaf(must_staple=True)
    # A reachable responder does not stand in for the staple.
    got = verify(w, leaf, responder=True)
    assert (got.which, got.reason) == ("invalid", "mustStapleMissing")
    assert "must-staple: no stapled OCSP response" in got.detail
    assert not [e for e in got.audit.events
                if e.capability == "ocspResponder"]


def test_stapling_required_extends_to_a_normal_leaf(w: World) -> None:
    leaf = w.leaf()
    got = verify(w, leaf, policy=STAPLING)
    assert (got.which, got.reason) == ("invalid", "mustStapleMissing")
    assert "stapling required: no stapled OCSP response" in got.detail
    assert got.event("verifyChain").reason == "mustStapleMissing"
    ok = verify(w, leaf, policy=STAPLING, staple=w.respond(leaf))
    assert (ok.which, ok.ocsp_status) == ("valid", "good")


# --- no staple: the responder capability, soft and hard fail ---------

def test_require_ocsp_with_unreachable_responder_fails(w: World) -> None:
    leaf = w.leaf()
    w.server.stop()
    got = verify(w, leaf, policy=HARD, responder=True)
    assert (got.which, got.reason) == ("invalid", "ocspUnavailable")
    assert "requireOcsp" in got.detail
    assert "ocsp responder unreachable: ocspUnavailable: unreachable" in (
        got.detail)
    [asked] = [e for e in got.audit.events
               if e.capability == "ocspResponder"]
    assert (asked.outcome, asked.reason) == ("refused", "ocspUnavailable")


def test_soft_fail_says_so_in_outcome_and_audit(w: World) -> None:
    leaf = w.leaf()
    w.server.stop()
    got = verify(w, leaf, responder=True)
    assert (got.which, got.ocsp_status) == ("valid", "responderUnreachable")
    assert got.revocation.startswith("softFail: ")
    assert "ocsp responder unreachable" in got.revocation
    event = got.event("verifyChain")
    assert (event.outcome, event.reason) == ("ok", "")
    assert "revocation soft-fail ocspStatus=responderUnreachable" in (
        event.detail)
    assert "requireOcsp is off" in event.detail
    assert "ocsp responder unreachable" in event.detail


def test_verifier_without_responder_cannot_fetch(w: World) -> None:
    leaf = w.leaf()
    soft = verify(w, leaf)
    assert (soft.which, soft.ocsp_status) == ("valid",
                                              "responderUnreachable")
    assert "no OcspResponder capability" in soft.event(
        "verifyChain").detail
    hard = verify(w, leaf, policy=HARD)
    assert (hard.which, hard.reason) == ("invalid", "ocspUnavailable")
    assert "no OcspResponder capability" in hard.detail


def test_fetched_status_good_and_revoked(w: World) -> None:
    leaf = w.leaf()
    got = verify(w, leaf, policy=HARD, responder=True)
    assert (got.which, got.ocsp_status) == ("valid", "good")
    assert "revocation=ocsp ocspStatus=good" in got.event(
        "verifyChain").detail
    when = T0 + dt.timedelta(minutes=5)
    w.ca.revoke(leaf.serial_number, "superseded", when)
    w.clock.advance(600)
    bad = verify(w, leaf, responder=True)
    assert (bad.which, bad.reason) == ("invalid", "revoked")
    assert bad.detail.startswith("revoked: ocsp: revoked at "
                                 f"{when.isoformat()} (superseded)")


def test_a_good_staple_means_no_fetch(w: World) -> None:
    leaf = w.leaf()
    got = verify(w, leaf, policy=HARD, staple=w.respond(leaf),
                 responder=True)
    assert got.ocsp_status == "good"
    assert not [e for e in got.audit.events
                if e.capability == "ocspResponder"]


def test_empty_staple_is_verify_chain(w: World) -> None:
    leaf = w.leaf(must_staple=True)
    got = verify(w, leaf, staple=b"")
    assert (got.which, got.reason) == ("invalid", "mustStapleMissing")
    assert "staple=no" in got.event("verifyChainWithStaple").detail


# --- short-lived certificates and CRLs --------------------------------

def test_short_lived_passes_without_evidence_under_require_ocsp(
        w: World) -> None:
    leaf = w.leaf(lifetime=10 * 86400)
    got = verify(w, leaf, policy=HARD)
    assert (got.which, got.ocsp_status) == ("valid", "stapledAbsent")
    assert got.revocation == "shortLived"
    assert "revocation=shortLived" in got.event("verifyChain").detail
    longer = w.leaf(lifetime=10 * 86400 + 1)
    assert verify(w, longer, policy=HARD).reason == "ocspUnavailable"


def test_fresh_crl_passes_and_listed_serial_is_revoked(w: World) -> None:
    leaf, bad = w.leaf(), w.leaf(["bad.example.com"])
    when = T0 - dt.timedelta(minutes=10)
    w.ca.revoke(bad.serial_number, "keyCompromise", when)
    crl = crl_der(w)
    got = verify(w, leaf, policy=HARD, crl=crl)
    assert (got.which, got.ocsp_status) == ("valid", "stapledAbsent")
    assert got.revocation == "crl"
    assert "revocation=crl" in got.event("verifyChain").detail
    listed = verify(w, bad, policy=SOFT, crl=crl, host="bad.example.com")
    assert (listed.which, listed.reason) == ("invalid", "revoked")
    assert listed.detail.startswith(
        f"revoked: crl: revoked at {when.isoformat()} (keyCompromise)")


def test_stale_crl_is_no_evidence(w: World) -> None:
    leaf = w.leaf()
    crl = crl_der(w)
    next_update = x509.load_der_x509_crl(crl).next_update_utc
    assert next_update is not None
    w.clock.advance((next_update - T0).total_seconds() + 3600)
    got = verify(w, leaf, policy=HARD, crl=crl)
    assert (got.which, got.reason) == ("invalid", "ocspUnavailable")
    assert "crl" in got.detail and "requireOcsp" in got.detail


# --- field report 12(e): client side, must-staple leaf ----------------

def _none(w: World, leaf: x509.Certificate) -> bytes | None:
    return None


def _expired(w: World, leaf: x509.Certificate) -> bytes | None:
    staple = w.respond(leaf)
    w.clock.advance((2 * HOUR).total_seconds() + 601)  # past skew
    return staple


def _other(w: World, leaf: x509.Certificate) -> bytes | None:
    return w.respond(w.leaf(["other.example.com"]))


def _valid(w: World, leaf: x509.Certificate) -> bytes | None:
    return w.respond(leaf)


@pytest.mark.parametrize("make,which,reason,problem", [
    (_none, "invalid", "mustStapleMissing", "no stapled OCSP response"),
    (_expired, "invalid", "ocspUnavailable", "ocspStale"),
    (_other, "invalid", "ocspUnavailable", "ocspMismatch"),
    (_valid, "valid", "", ""),
], ids=["none", "expired", "other-serial", "valid"])
def test_12e_must_staple_client_table(w: World, make: object, which: str,
                                      reason: str, problem: str) -> None:
    leaf = w.leaf(must_staple=True)
    staple = make(w, leaf)  # type: ignore[operator]
    got = verify(w, leaf, staple=staple, responder=True)
    assert (got.which, got.reason) == (which, reason), got.detail
    assert problem in got.detail
    if which == "valid":
        assert got.ocsp_status == "good"
    else:
        assert got.detail.startswith(
            "mustStapleMissing: must-staple" if staple is None
            else f"{problem}: must-staple: stapled response unusable")
    # The verifier never asks the responder for a must-staple leaf.
    assert not [e for e in got.audit.events
                if e.capability == "ocspResponder"]


# --- malformed, oversized and unknown evidence ------------------------

def test_malformed_staple(w: World) -> None:
    must = w.leaf(must_staple=True)
    got = verify(w, must, staple=b"\x30\x03\x0a\x01\x00garbage")
    assert (got.which, got.reason) == ("invalid", "ocspUnavailable")
    assert got.detail.startswith("malformed: must-staple: stapled "
                                 "response unusable")
    # A normal leaf: the broken staple is no evidence; the responder is
    # asked instead and its good answer passes.
    leaf = w.leaf()
    ok = verify(w, leaf, policy=HARD, staple=b"junk", responder=True)
    assert (ok.which, ok.ocsp_status) == ("valid", "good")
    detail = ok.event("verifyChainWithStaple").detail
    assert "revocation=ocsp" in detail
    assert "ocspStaple unusable: malformed" in detail


def test_oversized_staple_is_refused_and_audited(w: World) -> None:
    leaf = w.leaf()
    got = verify(w, leaf, staple=b"\x00" * (64 * 1024 + 1))
    assert (got.which, got.reason) == ("invalid", "policyViolation")
    assert got.detail == "staple of 65537 B is over 65536 B"
    assert got.event("verifyChainWithStaple").reason == "policyViolation"


def test_unknown_status_is_reported_not_good(w: World) -> None:
    leaf = w.leaf()
    unknown = ResponderCore(w.ca.cert, ca_signer(w.ca),
                            lambda _serial: StatusAnswer("unknown"),
                            2 * HOUR)
    staple = w.respond(leaf, unknown)
    soft = verify(w, leaf, staple=staple)
    assert (soft.which, soft.ocsp_status) == ("valid", "unknown")
    assert "ocspStaple says unknown" in soft.event(
        "verifyChainWithStaple").detail
    hard = verify(w, leaf, policy=HARD, staple=staple)
    assert (hard.which, hard.reason) == ("invalid", "ocspUnavailable")
    assert "ocspStaple says unknown" in hard.detail
    must = w.leaf(must_staple=True)
    got = verify(w, must, staple=w.respond(must, unknown))
    assert (got.which, got.reason) == ("invalid", "ocspUnavailable")
    assert got.detail.startswith("statusUnknown: must-staple")


# --- the booted service: evidence capabilities are grants -------------

@dataclasses.dataclass
class _Granted:
    """A grant as the service host hands it over (an AnyPointer)."""

    cap: Any

    def cast_as(self, interface: Any) -> Any:
        return self.cap.cast_as(interface)


def test_verifier_service_uses_a_granted_responder(w: World) -> None:
    presets = (Path(__file__).resolve().parents[3]
               / "bootmanifest/presets.json").read_text()
    inputs = {"presets": json.dumps(json.loads(presets)["presets"])
              .encode()}
    leaf = w.leaf()
    audit = MemoryAuditSink()

    async def one(grants: dict[str, Any]) -> str:
        ctx = ServiceContext(name="verifier", grants=grants, inputs=inputs,
                             settings={}, clock=w.clock, audit=audit)
        exports = await verifier_service.build(ctx)
        async with serve(exports["webPkiLenient"],
                         pki().CertVerifier) as verifier:
            reply = await verifier.verifyChain(
                CertificateChainImpl([parse_certificate(
                    leaf.public_bytes(Encoding.DER))]),
                TrustStoreImpl(TrustStoreCore((Anchor(
                    parse_certificate(w.ca.cert_der), "root"),))),
                "tlsServerAuth", 0, HOST)
            return str(reply.outcome.valid.ocspStatus)

    async def main() -> tuple[str, str]:
        async with serve(OcspResponderImpl(HttpTransport(), audit=audit,
                                           clock=w.clock),
                         pki().OcspResponder) as ocsp:
            granted = await one({"ocspResponder": _Granted(ocsp)})
        return granted, await one({})

    assert run(main) == ("good", "responderUnreachable")


# --- the host command line takes a staple -----------------------------

def test_command_line_verifies_with_a_staple(
        w: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tools import verify as cli

    leaf = w.leaf(must_staple=True)
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(Encoding.PEM))
    (tmp_path / "root.pem").write_bytes(w.ca.cert.public_bytes(
        Encoding.PEM))
    (tmp_path / "staple.der").write_bytes(w.respond(leaf))
    args = [str(tmp_path / "leaf.pem"), "--anchor",
            str(tmp_path / "root.pem"), "--hostname", HOST,
            "--at", T0.isoformat(), "--json"]
    assert cli.main(args) == cli.EXIT_INVALID
    missing = json.loads(capsys.readouterr().out)
    assert missing["reason"] == "mustStapleMissing"
    assert cli.main([*args, "--staple", str(tmp_path / "staple.der")]) == (
        cli.EXIT_VALID)
    good = json.loads(capsys.readouterr().out)
    assert (good["ocspStatus"], good["revocation"]) == ("good", "ocspStaple")


# --- end to end: staple from a real TLS handshake into the verifier ---

def test_staple_from_the_tls_handshake_into_the_verifier(w: World) -> None:
    audit = MemoryAuditSink()
    key = ec.generate_private_key(ec.SECP256R1())
    record = w.ca.issue(ca_policy.admit(
        IssuancePolicy(must_staple=True),
        parse_request(h.csr([HOST], key), (), 0, ())))
    leaf_cert = parse_certificate(record.der)
    stapler = OcspStaplerImpl(StaplerCore(None, w.clock, audit))
    when = T0 + dt.timedelta(minutes=30)

    async def main() -> list[tuple[str, str, str]]:
        seen = []
        async with serve(OcspResponderImpl(HttpTransport(), audit=audit,
                                           clock=w.clock),
                         pki().OcspResponder) as responder, serve(
                CertVerifierImpl(SOFT, audit=audit, clock=w.clock,
                                 name="rev"), pki().CertVerifier) as verifier:
            await stapler.attach(pki().CertificateChain._new_client(
                CertificateChainImpl([leaf_cert, parse_certificate(
                    w.ca.cert_der)])), responder)
            trust = TrustStoreImpl(TrustStoreCore((Anchor(
                parse_certificate(w.ca.cert_der), "root"),)))
            with StaplingTLSServer(key, [record.der, w.ca.cert_der],
                                   stapler.current_der) as tls:
                for step in range(2):
                    if step:
                        w.ca.revoke(leaf_cert.cert.serial_number,
                                    "keyCompromise", when)
                        w.clock.advance(HOUR.total_seconds())
                        await stapler.maintain(_no_sleep, rounds=1)
                    staple = client_handshake(tls.port)
                    out = (await verifier.verifyChainWithStaple(
                        CertificateChainImpl([leaf_cert]), trust,
                        "tlsServerAuth", 0, HOST, staple)).outcome
                    seen.append(
                        ("valid", str(out.valid.ocspStatus), "")
                        if out.which() == "valid" else
                        ("invalid", str(out.invalid.reason),
                         out.invalid.detail))
        return seen

    first, second = run(main)
    assert first == ("valid", "good", "")
    assert second[:2] == ("invalid", "revoked")
    assert f"revoked at {when.isoformat()} (keyCompromise)" in second[2]


async def _no_sleep(seconds: float) -> None:
    del seconds


def test_responder_answer_the_verifier_cannot_use(w: World) -> None:
    leaf = w.leaf()
    # The responder signs through a delegate without id-kp-OCSPSigning:
    # the responder capability refuses it, and the verifier says why.
    rogue = core_with(w, odd_signer(w.ca, eku=False))
    w.server.answer = rogue.respond
    got = verify(w, leaf, policy=HARD, responder=True)
    assert (got.which, got.reason) == ("invalid", "ocspUnavailable")
    assert "ocsp responder gave no usable status: badEku: " \
        "responderNotOcspSigning" in got.detail
