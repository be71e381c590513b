"""End to end on the host: the CA issues a must-staple certificate, the
stapler keeps its staple, the TLS server staples it, a client takes it
from the handshake and the evidence check decides; after a revocation
the next refresh staples "revoked" and the client fails with the time
and reason."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

from services._runtime.audit import MemoryAuditSink
from services._runtime.schema import pki
from services.ca import policy as ca_policy
from services.ca.model import IssuancePolicy, parse_request
from services.ocsp.errors import Reason, RevocationError
from services.ocsp.evidence import RevocationPolicy, check_revocation
from services.ocsp.responder_impl import OcspResponderImpl
from services.ocsp.staple_tls import StaplingTLSServer, client_handshake
from services.ocsp.stapler import StaplerCore
from services.ocsp.stapler_impl import OcspStaplerImpl
from services.ocsp.transport import HttpTransport
from services.x509.chain_impl import CertificateChainImpl
from services.x509.model import parse_certificate
from tests.services.ca import helpers as h
from tests.services.ocsp.pkiworld import HOUR, T0, World
from tests.services.x509 import pkifactory as f
from tests.services.x509.rpc import run


def test_staple_through_tls_to_the_evidence_check(w: World) -> None:
    audit = MemoryAuditSink()
    key = f.ec_key("e2e")
    record = w.ca.issue(ca_policy.admit(
        IssuancePolicy(must_staple=True),
        parse_request(h.csr(["e2e.example.com"], key), (), 0, ())))
    leaf = x509.load_der_x509_certificate(record.der)
    stapler = OcspStaplerImpl(StaplerCore(None, w.clock, audit))
    policy = RevocationPolicy(require_ocsp=True)

    async def main() -> tuple[str, RevocationError]:
        responder = pki().OcspResponder._new_client(OcspResponderImpl(
            HttpTransport(), audit=audit, clock=w.clock))
        chain = pki().CertificateChain._new_client(CertificateChainImpl([
            parse_certificate(record.der),
            parse_certificate(w.ca.cert_der)]))
        with StaplingTLSServer(key, [record.der, w.ca.cert_der],
                               stapler.current_der) as tls:
            await stapler.attach(chain, responder)
            staple = client_handshake(tls.port)
            first = check_revocation(leaf, w.ca.cert, w.clock.now(),
                                     policy, staple=staple)
            w.ca.revoke(leaf.serial_number, "keyCompromise",
                        T0 + dt.timedelta(minutes=30))
            w.clock.advance(HOUR.total_seconds())
            await stapler.maintain(_no_sleep, rounds=1)
            staple = client_handshake(tls.port)
            with pytest.raises(RevocationError) as err:
                check_revocation(leaf, w.ca.cert, w.clock.now(), policy,
                                 staple=staple)
        return first.source, err.value

    source, err = run(main)
    assert source == "ocspStaple"
    assert err.reason is Reason.revoked
    assert err.context["revocation_time"] == T0 + dt.timedelta(minutes=30)
    assert err.context["revocation_reason"] == "keyCompromise"
    assert [e.operation for e in audit.events].count("refresh") == 2


async def _no_sleep(seconds: float) -> None:
    del seconds
