"""x509-limbo's ``crl::`` cases through the CrlStore's path.

Each case: pyca's verifier builds the path at the case's validation
time (as the x509 service does); then every certificate in it whose
issuer has a CRL among the case's CRLs is looked up through
:class:`~services.crl.store_impl.CrlCache` (check, then scope and
entry). Hard-fail: a revoked serial or an unusable CRL fails the case,
as limbo expects when it supplies CRLs.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
import lzma
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification as pv

from services._runtime.clock import FakeClock
from services.crl.errors import CrlError
from services.crl.policy import lookup
from services.crl.store_impl import CrlCache
from services.crl.transport import CallableCrlSource

LIMBO = Path(__file__).resolve().parents[2] / "vectors/limbo/limbo.json.xz"


@functools.cache
def cases() -> dict[str, dict[str, Any]]:
    data = json.loads(lzma.open(LIMBO).read())
    return {t["id"]: t for t in data["testcases"]
            if t["id"].startswith("crl::")}


def outcome(case: dict[str, Any]) -> str:
    at = dt.datetime.fromisoformat(case["validation_time"])
    load = x509.load_pem_x509_certificate
    trusted = [load(c.encode()) for c in case["trusted_certs"]]
    inter = [load(c.encode()) for c in case["untrusted_intermediates"]]
    leaf = load(case["peer_certificate"].encode())
    # NOTE: pyca's web-PKI CA profile requires keyUsage on CAs; the
    # CRL cases exercise CRL handling, and one of them is an issuer with
    # no keyUsage, so the path is built with keyUsage optional on CAs.
    ca_policy = pv.ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.KeyUsage, pv.Criticality.AGNOSTIC, None)
    verifier = (pv.PolicyBuilder().store(pv.Store(trusted)).time(at)
                .extension_policies(
                    ca_policy=ca_policy,
                    ee_policy=pv.ExtensionPolicy.webpki_defaults_ee())
                .build_server_verifier(pv.DNSName(
                    case["expected_peer_name"]["value"])))
    try:
        chain = verifier.verify(leaf, inter)
    except pv.VerificationError as err:
        return f"FAILURE path: {err}"
    crls = [x509.load_pem_x509_crl(c.encode()) for c in case["crls"]]

    def produce(issuer: x509.Certificate) -> bytes:
        for crl in crls:
            if crl.issuer == issuer.subject:
                return crl.public_bytes(Encoding.DER)
        raise AssertionError("no CRL for this issuer")

    cache = CrlCache(chain[1:], CallableCrlSource(produce), FakeClock(at),
                     skew=dt.timedelta(0))
    names = {c.issuer for c in crls}
    for cert, issuer in itertools.pairwise(chain):
        if issuer.subject not in names:
            continue
        try:
            entry = lookup(cache.get(issuer.subject.public_bytes()), cert)
        except CrlError as err:
            return f"FAILURE crl: {err.problem.value}"
        if entry is not None:
            return "FAILURE revoked"
    return "SUCCESS"


#: Why each failing case fails, so a pass for the wrong reason shows.
WHY = {
    "crl::crlnumber-critical": "FAILURE crl: crlUnsupportedCriticalExtension",
    "crl::crlnumber-missing": "FAILURE crl: crlNumberMissing",
    "crl::issuer-missing-crlsign": "FAILURE crl: crlIssuerNotAuthorized",
    "crl::revoked-certificate-with-crl": "FAILURE revoked",
}


@pytest.mark.parametrize("case_id", sorted(cases()))
def test_limbo_crl_case(case_id: str) -> None:
    case = cases()[case_id]
    got = outcome(case)
    assert got.split()[0] == case["expected_result"], got
    assert got == WHY.get(case_id, "SUCCESS")


def test_every_limbo_crl_case_is_run() -> None:
    assert len(cases()) == 8
