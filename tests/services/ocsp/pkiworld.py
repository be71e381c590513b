"""A private CA with its OCSP responder on 127.0.0.1, at time T0, and
the odd signers the tests need (delegates without the EKU, from
another CA), plus the DER helper for SHA-1 signatures that
cryptography's builders refuse (field reports, "Helpers")."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services._runtime.clock import FakeClock
from services.ca import issuer
from services.ca.core import PrivateCA
from services.ca.model import CAConfig, IssuancePolicy
from services.ocsp.responder import ResponderCore, Signer, for_ca
from services.ocsp.server import OcspHttpServer
from tests.services.ca import helpers as h

T0 = h.T0
HOUR = dt.timedelta(hours=1)


@dataclasses.dataclass
class World:
    ca: PrivateCA
    clock: FakeClock
    server: OcspHttpServer
    core: ResponderCore

    def leaf(self, names: list[str] | None = None, *,
             must_staple: bool = False, lifetime: int = 0) -> x509.Certificate:
        return h.issue_direct(
            self.ca, names or ["www.example.com"], lifetime=lifetime,
            issuance=IssuancePolicy(must_staple=must_staple))

    def respond(self, cert: x509.Certificate,
                core: ResponderCore | None = None,
                at: dt.datetime | None = None) -> bytes:
        """A response from ``core`` (default the CA's) for ``cert``."""
        from services.ocsp.policy import build_request

        return (core or self.core).respond(
            build_request(cert, self.ca.cert), at or self.clock.now())


def world(path: Path, *, key_type: str = "ecdsaP256",
          validity: dt.timedelta = 2 * HOUR,
          clock: FakeClock | None = None) -> Iterator[World]:
    clock = clock or FakeClock(T0)
    holder: dict[str, Any] = {}
    server = OcspHttpServer(
        lambda req, now: holder["core"].respond(req, now), clock).start()
    try:
        ca = PrivateCA(path, CAConfig(
            ocsp_url=server.url, crl_url=f"http://127.0.0.1:{server.port}"
            "/crl", key_type=key_type), clock, h.counter_random())
        core = for_ca(ca, validity)
        holder["core"] = core
        server.answer = core.respond
        yield World(ca, clock, server, core)
    finally:
        server.stop()


def odd_signer(ca: PrivateCA, *, eku: bool,
               signed_by: tuple[Any, x509.Certificate] | None = None,
               serial: int = 0x77) -> Signer:
    """A responder certificate under ``ca``'s name, with or without
    id-kp-OCSPSigning, signed by ``ca``'s key or by ``signed_by``."""
    key = issuer.new_key("ecdsaP256")
    sign_key, sign_cert = signed_by or (ca._key, ca.cert)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(
            NameOID.COMMON_NAME, "odd responder")]))
        .issuer_name(sign_cert.subject).public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(T0 - dt.timedelta(days=1))
        .not_valid_after(T0 + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                       critical=True))
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return Signer(key, builder.sign(sign_key, issuer.signing_hash(sign_key)))


def core_with(w: World, signer: Signer,
              validity: dt.timedelta = 2 * HOUR) -> ResponderCore:
    from services.ocsp.responder import ca_status

    return ResponderCore(w.ca.cert, lambda: signer, ca_status(w.ca),
                         validity)


SHA256_RSA = bytes.fromhex("06092a864886f70d01010b")
SHA1_RSA = bytes.fromhex("06092a864886f70d010105")


def resign_sha1(der: bytes, tbs: bytes, signature: bytes, key: Any,
                inner: bool) -> bytes:
    """Field reports' DER helper: turn a sha256WithRSA object (OCSP
    response, or CRL when ``inner``) into sha1WithRSA.

    Patch the algorithm OID (inside the TBS too when ``inner``, as
    certificates and CRLs repeat it there), re-sign the TBS with SHA-1
    and splice. For RSA-2048 every length is unchanged.
    """
    new_tbs = tbs.replace(SHA256_RSA, SHA1_RSA, 1) if inner else tbs
    new_sig = key.sign(new_tbs, padding.PKCS1v15(), hashes.SHA1())
    assert len(new_sig) == len(signature)
    start = der.index(tbs)
    end = start + len(tbs)
    tail = der[end:]
    tail = tail.replace(SHA256_RSA, SHA1_RSA, 1).replace(signature, new_sig)
    return der[:start] + new_tbs + tail


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.PEM)
