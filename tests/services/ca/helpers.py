"""Shared helpers for the CA, OCSP and CRL tests: a private CA in a
temporary directory at the field reports' fixed time T0, CSRs, and
issuance through the capability."""

from __future__ import annotations

import ipaddress
import itertools
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from services._runtime.clock import FakeClock
from services._runtime.schema import pki
from services.ca import policy as ca_policy
from services.ca.core import PrivateCA
from services.ca.model import CAConfig, IssuancePolicy, parse_request
from tests.services.x509 import pkifactory as f

T0 = f.T0
OCSP_URL = "http://127.0.0.1:9/ocsp"
CRL_URL = "http://127.0.0.1:9/crl"


def counter_random() -> Any:
    """Deterministic 16-octet serial source."""
    counter = itertools.count(1)

    def draw(n: int) -> bytes:
        return next(counter).to_bytes(n, "big")

    return draw


def config(**overrides: Any) -> CAConfig:
    base = dict(ocsp_url=OCSP_URL, crl_url=CRL_URL)
    base.update(overrides)
    return CAConfig(**base)  # type: ignore[arg-type]


def open_ca(path: Path, clock: FakeClock | None = None,
            **overrides: Any) -> PrivateCA:
    return PrivateCA(path, config(**overrides), clock or FakeClock(T0),
                     counter_random())


def csr(names: list[str], key: Any = None) -> bytes:
    """DER PKCS#10 for DNS names (or IPs), signed by ``key``."""
    key = key or f.ec_key("csr")
    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    alg = None if not isinstance(
        key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)) else (
        hashes.SHA256())
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(key, alg).public_bytes(Encoding.DER))


def issue_direct(ca: PrivateCA, names: list[str], *,
                 issuance: IssuancePolicy | None = None,
                 lifetime: int = 0, key: Any = None) -> x509.Certificate:
    """Issue through the pure policy and the core (no RPC)."""
    parsed = parse_request(csr(names, key), (), lifetime, ())
    admitted = ca_policy.admit(issuance or IssuancePolicy(), parsed)
    record = ca.issue(admitted)
    return x509.load_der_x509_certificate(record.der)


def request(names: list[str], *, lifetime: int = 0, key: Any = None,
            purposes: tuple[str, ...] = ()) -> Any:
    msg = pki().IssuanceRequest.new_message()
    msg.csr = csr(names, key)
    msg.lifetimeSeconds = lifetime
    ps = msg.init("purposes", len(purposes))
    for i, p in enumerate(purposes):
        ps[i] = p
    return msg
