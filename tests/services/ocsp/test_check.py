"""The OCSP client core against the project's responder on 127.0.0.1:
statuses, the delegated signer's authorisation, freshness, CertID
matching (field report 6d) and the SHA-1 setting (field report 6c)."""

from __future__ import annotations

import base64
import datetime as dt
import urllib.parse
import urllib.request
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

from services.ca import issuer as ca_issuer
from services.ca import policy as ca_policy
from services.ca.model import IssuancePolicy, parse_request
from services.ocsp import policy
from services.ocsp.client import ClientSettings, fetch_status
from services.ocsp.errors import (
    Problem,
    Reason,
    ResponderError,
    ResponseRejectedError,
    UnavailableError,
)
from services.ocsp.model import CheckedResponse
from services.ocsp.transport import HttpTransport
from tests.services.ca import helpers as h
from tests.services.ocsp.pkiworld import (
    HOUR,
    T0,
    World,
    core_with,
    odd_signer,
    resign_sha1,
)

HTTP = HttpTransport(timeout=5)


def check(w: World, der: bytes, cert: x509.Certificate,
          **kw: Any) -> CheckedResponse:
    return policy.check_response(der, cert, w.ca.cert, w.clock.now(), **kw)


def test_good_over_http(w: World) -> None:
    leaf = w.leaf()
    got = fetch_status(leaf, w.ca.cert, HTTP, w.clock.now())
    assert got.status == "good"
    assert got.serial == leaf.serial_number
    assert (got.this_update, got.next_update) == (T0, T0 + 2 * HOUR)
    assert got.refresh_at == T0 + HOUR
    assert "OCSP Responder" in got.signer
    assert w.server.answered == 1


def test_revoked_carries_time_and_reason(w: World) -> None:
    leaf = w.leaf()
    w.ca.revoke(leaf.serial_number, "keyCompromise",
                T0 - dt.timedelta(minutes=5))
    got = fetch_status(leaf, w.ca.cert, HTTP, w.clock.now())
    assert got.status == "revoked"
    assert got.revocation_time == T0 - dt.timedelta(minutes=5)
    assert got.revocation_reason == "keyCompromise"


def test_unknown_for_a_serial_never_recorded(w: World) -> None:
    admitted = ca_policy.admit(IssuancePolicy(), parse_request(
        h.csr(["ghost.example.com"]), (), 0, ()))
    ghost = ca_issuer.issue_leaf(w.ca.cert, w.ca._key, admitted, 0xDEAD,
                                 T0, w.ca.config)
    got = fetch_status(ghost, w.ca.cert, HTTP, w.clock.now())
    assert got.status == "unknown"


@pytest.mark.parametrize("cert_id_hash", ["sha1", "sha256", "sha384"])
def test_cert_id_hashes_accepted_in_every_mode(w: World,
                                               cert_id_hash: str) -> None:
    """Field report 6d: a SHA-1 CertID is not a signature."""
    leaf = w.leaf()
    for allow_sha1 in (True, False):
        got = fetch_status(leaf, w.ca.cert, HTTP, w.clock.now(),
                           ClientSettings(cert_id_hash=cert_id_hash,
                                          allow_sha1=allow_sha1))
        assert got.status == "good"
        assert got.warnings == ()
    resp = ocsp.load_der_ocsp_response(got.der)
    assert resp.hash_algorithm.name == cert_id_hash


def test_delegate_without_ocsp_signing_eku_is_refused(w: World) -> None:
    leaf = w.leaf()
    der = w.respond(leaf, core_with(w, odd_signer(w.ca, eku=False)))
    with pytest.raises(ResponseRejectedError) as err:
        check(w, der, leaf)
    assert err.value.problem is Problem.responderNotOcspSigning
    assert err.value.reason is Reason.badEku


def test_delegate_from_another_issuer_is_unauthorised(
        w: World, tmp_path: object) -> None:
    other = h.open_ca(tmp_path / "other",  # type: ignore[operator]
                      name="Other CA")
    leaf = w.leaf()
    # Its EKU is right, but the other CA issued it.
    rogue = odd_signer(w.ca, eku=True, signed_by=(other._key, other.cert))
    der = w.respond(leaf, core_with(w, rogue))
    with pytest.raises(ResponseRejectedError) as err:
        check(w, der, leaf)
    assert err.value.problem is Problem.unauthorizedResponder
    # The other CA's own delegated responder is no better.
    cred = other.responder()
    from services.ocsp.responder import Signer

    der = w.respond(leaf, core_with(w, Signer(cred.key, cred.cert)))
    with pytest.raises(ResponseRejectedError) as err:
        check(w, der, leaf)
    assert err.value.problem is Problem.unauthorizedResponder


def test_issuer_signing_directly_is_accepted(w: World) -> None:
    from services.ocsp.responder import Signer

    leaf = w.leaf()
    der = w.respond(leaf, core_with(w, Signer(w.ca._key, w.ca.cert)))
    got = check(w, der, leaf)
    assert got.status == "good"


def test_bad_signature(w: World) -> None:
    leaf = w.leaf()
    der = bytearray(w.respond(leaf))
    sig = ocsp.load_der_ocsp_response(bytes(der)).signature
    at = bytes(der).index(sig)
    der[at + 10] ^= 0x01
    with pytest.raises(ResponseRejectedError) as err:
        check(w, bytes(der), leaf)
    assert err.value.problem is Problem.badSignature


def test_other_serial_is_a_mismatch(w: World) -> None:
    leaf, other = w.leaf(), w.leaf(["other.example.com"])
    with pytest.raises(ResponseRejectedError) as err:
        check(w, w.respond(other), leaf)
    assert err.value.problem is Problem.ocspMismatch
    assert err.value.reason is Reason.ocspUnavailable
    assert err.value.context["serial"] == leaf.serial_number


@pytest.mark.parametrize(("offset", "problem"), [
    (dt.timedelta(hours=2, minutes=4), None),
    (dt.timedelta(hours=2, minutes=6), Problem.ocspStale),
    (-dt.timedelta(minutes=4), None),
    (-dt.timedelta(minutes=6), Problem.ocspNotYetValid),
], ids=["stale-within-skew", "stale", "early-within-skew", "early"])
def test_freshness_within_skew(w: World, offset: dt.timedelta,
                               problem: Problem | None) -> None:
    leaf = w.leaf()
    der = w.respond(leaf)  # thisUpdate T0, nextUpdate T0+2h
    at = T0 + offset
    if problem is None:
        assert policy.check_response(der, leaf, w.ca.cert, at).status == (
            "good")
        return
    with pytest.raises(ResponseRejectedError) as err:
        policy.check_response(der, leaf, w.ca.cert, at)
    assert err.value.problem is problem


def test_sha1_signed_response_follows_its_own_setting(
        rsa_world: World) -> None:
    """Field report 6c: on by default with a warning; off refuses."""
    w = rsa_world
    leaf = w.leaf()
    der = w.respond(leaf)
    resp = ocsp.load_der_ocsp_response(der)
    signer = w.ca.responder()
    sha1 = resign_sha1(der, resp.tbs_response_bytes, resp.signature,
                       signer.key, inner=False)
    assert isinstance(ocsp.load_der_ocsp_response(sha1)
                      .signature_hash_algorithm, hashes.SHA1)
    got = check(w, sha1, leaf)
    assert got.status == "good"
    assert got.warnings == (
        "sha1-signed response accepted (ocsp_crl_allow_sha1)",)
    with pytest.raises(ResponseRejectedError) as err:
        check(w, sha1, leaf, allow_sha1=False)
    assert err.value.problem is Problem.sha1Signature
    assert err.value.reason is Reason.weakAlgorithm
    # The SHA-256 original passes with the setting off.
    assert check(w, der, leaf, allow_sha1=False).warnings == ()


def test_malformed_and_unsuccessful(w: World, tmp_path: object) -> None:
    leaf = w.leaf()
    with pytest.raises(ResponderError) as err:
        check(w, b"\x30\x00", leaf)
    assert err.value.problem is Problem.malformed
    other = h.open_ca(tmp_path / "other", name="Other CA")  # type: ignore
    foreign = h.issue_direct(other, ["www.example.net"])
    # Our responder answers "unauthorized" for another CA's certificate.
    with pytest.raises(ResponderError) as err:
        fetch_status(foreign, other.cert, HTTP, w.clock.now(),
                     url=w.server.url)
    assert err.value.problem is Problem.unsuccessful
    assert "UNAUTHORIZED" in err.value.detail


def test_unreachable_and_refused_hosts(w: World) -> None:
    leaf = w.leaf()
    port = w.server.port
    w.server.stop()
    with pytest.raises(UnavailableError) as err:
        fetch_status(leaf, w.ca.cert, HTTP, w.clock.now())
    assert err.value.reason is Reason.ocspUnavailable
    assert err.value.problem is Problem.unreachable
    with pytest.raises(UnavailableError) as err:
        HTTP.post("http://192.0.2.1/ocsp", b"")
    assert "not allowed" in err.value.detail
    assert port > 0


def test_get_form_and_nonce_echo(w: World) -> None:
    leaf = w.leaf()
    req = policy.build_request(leaf, w.ca.cert, nonce=b"n" * 16)
    path = urllib.parse.quote(base64.b64encode(req).decode(), safe="")
    with urllib.request.urlopen(f"{w.server.url}/{path}",
                                timeout=5) as resp:
        body = resp.read()
        ctype = resp.headers["Content-Type"]
    assert ctype == "application/ocsp-response"
    parsed = ocsp.load_der_ocsp_response(body)
    assert parsed.extensions.get_extension_for_class(
        x509.OCSPNonce).value.nonce == b"n" * 16
    assert check(w, body, leaf, nonce=b"n" * 16).status == "good"
    with pytest.raises(ResponseRejectedError) as err:
        check(w, body, leaf, nonce=b"m" * 16)
    assert err.value.problem is Problem.ocspMismatch
