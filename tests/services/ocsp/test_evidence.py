"""The pure revocation-evidence check: field report 12e and every
policy flag (requireOcsp, staplingRequired, short-lived, CRLs)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from services.ocsp.errors import Problem, Reason, RevocationError
from services.ocsp.evidence import (
    RevocationEvidence,
    RevocationPolicy,
    check_revocation,
)
from tests.services.crl.test_crl import NULL, crl
from tests.services.ocsp.pkiworld import HOUR, T0, World

DEFAULT = RevocationPolicy()
STRICT = RevocationPolicy(require_ocsp=True)


def decide(w: World, leaf: x509.Certificate,
           policy: RevocationPolicy = DEFAULT, at: dt.datetime = T0,
           **kw: bytes | None) -> RevocationEvidence:
    return check_revocation(leaf, w.ca.cert, at, policy, **kw)


def failure(w: World, leaf: x509.Certificate,
            policy: RevocationPolicy = DEFAULT, at: dt.datetime = T0,
            **kw: bytes | None) -> RevocationError:
    with pytest.raises(RevocationError) as err:
        check_revocation(leaf, w.ca.cert, at, policy, **kw)
    return err.value


@pytest.mark.parametrize(("staple", "reason", "problem"), [
    ("none", Reason.mustStapleMissing, Problem.mustStapleMissing),
    ("expired", Reason.ocspUnavailable, Problem.ocspStale),
    ("other-serial", Reason.ocspUnavailable, Problem.ocspMismatch),
    ("valid", None, None),
], ids=["none", "expired", "other-serial", "valid"])
def test_field_report_12e_must_staple_client(
        w: World, staple: str, reason: Reason | None,
        problem: Problem | None) -> None:
    leaf = w.leaf(must_staple=True)
    other = w.leaf(["other.example.com"], must_staple=True)
    der = {"none": None,
           "expired": w.respond(leaf, at=T0 - 3 * HOUR),
           "other-serial": w.respond(other),
           "valid": w.respond(leaf)}[staple]
    if reason is None:
        got = decide(w, leaf, staple=der)
        assert (got.outcome, got.source, got.ocsp_status) == (
            "good", "ocspStaple", "good")
        return
    err = failure(w, leaf, staple=der)
    assert (err.reason, err.problem) == (reason, problem)


def test_must_staple_is_not_satisfied_by_other_evidence(w: World) -> None:
    leaf = w.leaf(must_staple=True, lifetime=86400 * 5)
    err = failure(w, leaf, fetched=w.respond(leaf),
                  crl=w.ca.crl().public_bytes(Encoding.DER))
    assert err.reason is Reason.mustStapleMissing


def test_stapling_required_extends_to_every_leaf(w: World) -> None:
    leaf = w.leaf()
    policy = RevocationPolicy(stapling_required=True)
    assert failure(w, leaf, policy).reason is Reason.mustStapleMissing
    assert decide(w, leaf, policy,
                  staple=w.respond(leaf)).outcome == "good"


def test_revoked_staple_reports_time_and_reason(w: World) -> None:
    leaf = w.leaf()
    w.ca.revoke(leaf.serial_number, "keyCompromise", T0 - HOUR)
    err = failure(w, leaf, staple=w.respond(leaf))
    assert err.reason is Reason.revoked
    assert err.context["revocation_time"] == T0 - HOUR
    assert err.context["revocation_reason"] == "keyCompromise"
    assert err.context["source"] == "ocspStaple"


def test_revoked_in_crl_beats_a_good_staple(w: World) -> None:
    leaf = w.leaf()
    staple = w.respond(leaf)
    w.ca.revoke(leaf.serial_number, "superseded", T0)
    err = failure(w, leaf, staple=staple,
                  crl=w.ca.crl().public_bytes(Encoding.DER))
    assert err.reason is Reason.revoked
    assert (err.context["source"], err.context["revocation_reason"]) == (
        "crl", "superseded")


def test_require_ocsp_unreachable_responder(w: World) -> None:
    leaf = w.leaf()
    err = failure(w, leaf, STRICT)
    assert (err.reason, err.problem) == (Reason.ocspUnavailable,
                                         Problem.noEvidence)


def test_without_require_ocsp_it_soft_fails_and_says_so(w: World) -> None:
    leaf = w.leaf()
    got = decide(w, leaf)
    assert got.outcome == "softFail"
    assert got.ocsp_status == "stapledAbsent"
    assert "soft-fail" in got.note
    # A stale staple on a non-must-staple leaf is noted, not fatal.
    got = decide(w, leaf, staple=w.respond(leaf, at=T0 - 3 * HOUR))
    assert got.outcome == "softFail"
    assert "ocspStale" in got.note


def test_fresh_crl_passes_and_unusable_crl_never_does(w: World) -> None:
    leaf = w.leaf()
    fresh = w.ca.crl().public_bytes(Encoding.DER)
    got = decide(w, leaf, STRICT, crl=fresh)
    assert (got.outcome, got.source) == ("good", "crl")
    poisoned = crl(w.ca, extensions=((NULL, True),))
    err = failure(w, leaf, STRICT, crl=poisoned)
    assert err.reason is Reason.ocspUnavailable
    assert "crlUnsupportedCriticalExtension" in err.detail
    assert decide(w, leaf, crl=poisoned).outcome == "softFail"
    # CRLs not allowed by policy: ignored, so strict fails.
    no_crl = RevocationPolicy(require_ocsp=True, crl_allowed=False)
    assert failure(w, leaf, no_crl, crl=fresh).reason is (
        Reason.ocspUnavailable)


@pytest.mark.parametrize(("days", "passes"), [(10, True), (11, False)])
def test_short_lived_allowance(w: World, days: int, passes: bool) -> None:
    leaf = w.leaf(lifetime=86400 * days)
    if passes:
        got = decide(w, leaf, STRICT)
        assert got.source == "shortLived"
    else:
        assert failure(w, leaf, STRICT).reason is Reason.ocspUnavailable


def test_fetched_response_counts_for_require_ocsp(w: World) -> None:
    leaf = w.leaf()
    got = decide(w, leaf, STRICT, fetched=w.respond(leaf))
    assert (got.outcome, got.source) == ("good", "ocsp")


def test_unknown_status(w: World) -> None:
    from services.ca import issuer as ca_issuer
    from services.ca import policy as ca_policy
    from services.ca.model import IssuancePolicy, parse_request
    from tests.services.ca import helpers as h

    admitted = ca_policy.admit(IssuancePolicy(must_staple=True),
                               parse_request(h.csr(["g.example.com"]),
                                             (), 0, ()))
    ghost = ca_issuer.issue_leaf(w.ca.cert, w.ca._key, admitted, 0xBEEF,
                                 T0, w.ca.config)
    err = failure(w, ghost, staple=w.respond(ghost))
    assert (err.reason, err.problem) == (Reason.ocspUnavailable,
                                         Problem.statusUnknown)
