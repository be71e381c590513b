"""Certificate and CertificateChain capabilities over two-party RPC."""

from __future__ import annotations

import hashlib
from typing import Any

from services._runtime.clock import epoch_seconds
from services._runtime.schema import pki
from services.x509.certificate_impl import CertificateImpl
from services.x509.model import parse_certificate
from tests.services.x509 import pkifactory as f
from tests.services.x509.rpc import run, serve
from tests.services.x509.test_verifier import chain_of


def call_all(der: bytes) -> dict[str, Any]:
    impl = CertificateImpl(parse_certificate(der))

    async def main() -> dict[str, Any]:
        async with serve(impl, pki().Certificate) as cert:
            subject = (await cert.subject()).name
            issuer = (await cert.issuer()).name
            sans = (await cert.subjectAltNames()).names
            bc = await cert.basicConstraints()
            info = await cert.info()
            pk = (await cert.publicKey()).pk
            return {
                "der": bytes((await cert.der()).encoded),
                "subject": subject.rfc4514,
                "subject_der": bytes(subject.der),
                "subject_cn": [
                    (a.oid, a.value) for rdn in subject.rdns
                    for a in rdn.attributes],
                "issuer": issuer.rfc4514,
                "serial": bytes((await cert.serial()).bytes),
                "not_before": (await cert.notBefore()).epochSeconds,
                "not_after": (await cert.notAfter()).epochSeconds,
                "sans": [(n.which(), n.dnsName) for n in sans],
                "ca": (bc.ca, bc.pathLenConstraint),
                "ku": (await cert.keyUsage()).usage.digitalSignature,
                "ekus": [(str(e.known), e.oid) for e in
                         (await cert.extendedKeyUsage()).ekus],
                "sha256": bytes((await cert.fingerprint("sha256")).digest),
                "sha1": bytes((await cert.fingerprint("sha1")).digest),
                "must_staple": (await cert.mustStaple()).required,
                "scts": len((await cert.embeddedScts()).scts),
                "nc": len((await cert.nameConstraints()).constraints
                          .permitted),
                "kind": (str(info.kind), str(info.algorithm)),
                "spki": bytes((await pk.der()).encoded),
                "pk_alg": str((await pk.algorithm()).algorithm),
            }

    return run(main)


def test_leaf_methods() -> None:
    h = f.hierarchy()
    got = call_all(h.leaf.der)
    assert got["der"] == h.leaf.der
    assert got["subject"] == "CN=service.capos.test,O=capOS"
    assert got["subject_der"] == h.leaf.cert.subject.public_bytes()
    assert ("2.5.4.3", "service.capos.test") in got["subject_cn"]
    assert got["issuer"] == "CN=Intermediate A,O=capOS"
    assert got["serial"] == b"\x12\x34"
    assert got["not_before"] == epoch_seconds(f.T0 - f.DAY)
    assert got["not_after"] == epoch_seconds(f.T0 + 90 * f.DAY)
    assert got["sans"] == [("dnsName", f.HOST)]
    assert got["ca"] == (False, -1)
    assert got["ku"] is True
    assert got["ekus"] == [("serverAuth", "1.3.6.1.5.5.7.3.1"),
                           ("clientAuth", "1.3.6.1.5.5.7.3.2")]
    assert got["sha256"] == hashlib.sha256(h.leaf.der).digest()
    assert got["sha1"] == hashlib.sha1(h.leaf.der).digest()
    assert (got["must_staple"], got["scts"], got["nc"]) == (False, 0, 0)
    assert got["kind"] == ("endEntity", "ecdsaP256")
    assert got["pk_alg"] == "ecdsaP256"
    assert got["spki"] == parse_certificate(h.leaf.der).spki_der


def test_root_and_intermediate_kinds() -> None:
    h = f.hierarchy()
    root = call_all(h.root.der)
    assert root["ca"] == (True, -1)
    assert root["kind"][0] == "trustAnchor"
    assert call_all(h.inter.der)["kind"][0] == "intermediate"


def test_chain_methods() -> None:
    h = f.hierarchy()

    async def main() -> tuple[list[bytes], bytes]:
        async with serve(chain_of(*h.chain), pki().CertificateChain) as c:
            certs = (await c.certificates()).chain
            ders = [bytes((await x.der()).encoded) for x in certs]
            leaf = (await c.leaf()).cert
            return ders, bytes((await leaf.der()).encoded)

    ders, leaf = run(main)
    assert ders == h.chain
    assert leaf == h.leaf.der


def test_chain_verify_shortcut() -> None:
    from services._runtime.audit import MemoryAuditSink
    from services._runtime.clock import FakeClock
    from services.x509.policy import WEB_PKI_LENIENT
    from services.x509.verifier_impl import CertVerifierImpl
    from tests.services.x509.test_verifier import store_of

    h = f.hierarchy()
    verifier = CertVerifierImpl(WEB_PKI_LENIENT, audit=MemoryAuditSink(),
                                clock=FakeClock(f.T0))

    async def main() -> tuple[str, bytes]:
        async with serve(chain_of(*h.chain), pki().CertificateChain) as c:
            out = (await c.verify(store_of(h.root), verifier,
                                  epoch_seconds(f.T0), f.HOST)).outcome
            anchor = bytes((await out.valid.anchor.der()).encoded)
            return str(out.which()), anchor

    assert run(main) == ("valid", h.root.der)
