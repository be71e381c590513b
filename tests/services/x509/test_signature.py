"""``CertVerifier.verifySignature`` for every SignatureScheme of the
schema, and the proposal's two consumers of it: WebAuthn attestation
(a FIDO-style root in a ``webauthnRoot`` store) and signed blobs under
the ``codeSigning`` preset."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import (
    ec,
    ed448,
    ed25519,
    padding,
    rsa,
)
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from services._runtime.audit import MemoryAuditSink
from services._runtime.clock import FakeClock, epoch_seconds
from services._runtime.schema import pki
from services.x509.certificate_impl import CertificateImpl
from services.x509.model import parse_certificate
from services.x509.policy import (
    CODE_SIGNING,
    WEB_PKI_LENIENT,
    VerificationPolicy,
)
from services.x509.trust import Anchor, TrustStoreCore
from services.x509.truststore_impl import TrustStoreImpl
from services.x509.verifier_impl import CertVerifierImpl
from tests.services.x509 import pkifactory as f
from tests.services.x509.rpc import run, serve
from tests.services.x509.test_verifier import chain_of

SCHEMES = list(pki().SignatureScheme.schema.enumerants)
ALGORITHMS = tuple(pki().AsymmetricAlgorithm.schema.enumerants)
#: A policy that admits every scheme, so each can be exercised.
EVERYTHING = VerificationPolicy(allowed_algorithms=ALGORITHMS,
                                allowed_signature_schemes=tuple(SCHEMES))
MESSAGE = b"capOS signed manifest v1"


@functools.cache
def key_for(scheme: str) -> Any:
    if scheme.startswith("rsa"):
        return _rsa()
    if scheme == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if scheme == "ed448":
        return ed448.Ed448PrivateKey.generate()
    curve = {"ecdsaP384Sha384": ec.SECP384R1(),
             "ecdsaP521Sha512": ec.SECP521R1()}.get(scheme, ec.SECP256R1())
    return ec.generate_private_key(curve)


@functools.cache
def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


_HASH = {"Sha1": hashes.SHA1, "Sha256": hashes.SHA256,
         "Sha384": hashes.SHA384, "Sha512": hashes.SHA512}


def sign(key: Any, scheme: str, message: bytes) -> bytes:
    """Sign with pyca directly, independently of the code under test."""
    if scheme in ("ed25519", "ed448"):
        return key.sign(message)  # type: ignore[no-any-return]
    digest = next(h() for s, h in _HASH.items() if scheme.endswith(s))
    if scheme.startswith("ecdsa"):
        return key.sign(message, ec.ECDSA(digest))  # type: ignore
    if scheme.startswith("rsaPss"):
        return key.sign(message, padding.PSS(  # type: ignore
            padding.MGF1(digest), padding.PSS.DIGEST_LENGTH), digest)
    return key.sign(message, padding.PKCS1v15(), digest)  # type: ignore


@functools.cache
def cert_for(scheme: str) -> bytes:
    """A leaf carrying ``key_for(scheme)``'s public key."""
    h = f.hierarchy()
    key = key_for(scheme)
    cert = (x509.CertificateBuilder()
            .subject_name(f.name(f"signer {scheme}"))
            .issuer_name(h.inter.cert.subject)
            .public_key(key.public_key()).serial_number(0x5151)
            .not_valid_before(f.T0 - f.DAY)
            .not_valid_after(f.T0 + 30 * f.DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                           critical=True)
            .sign(h.inter.key, hashes.SHA256()))  # type: ignore[arg-type]
    return cert.public_bytes(Encoding.DER)


def check(policy: VerificationPolicy, cert_der: bytes, message: bytes,
          signature: bytes, scheme: str) -> tuple[bool, MemoryAuditSink]:
    audit = MemoryAuditSink()
    impl = CertVerifierImpl(policy, audit=audit, clock=FakeClock(f.T0))

    async def main() -> bool:
        async with serve(impl, pki().CertVerifier) as verifier:
            reply = await verifier.verifySignature(
                CertificateImpl(parse_certificate(cert_der)), message,
                signature, scheme)
            return bool(reply.ok)

    return run(main), audit


def test_schema_names_thirteen_schemes() -> None:
    assert len(SCHEMES) == 13


@pytest.mark.parametrize("scheme", SCHEMES, ids=SCHEMES)
def test_every_scheme_verifies_and_rejects_a_changed_message(
        scheme: str) -> None:
    sig = sign(key_for(scheme), scheme, MESSAGE)
    good, audit = check(EVERYTHING, cert_for(scheme), MESSAGE, sig, scheme)
    bad, bad_audit = check(EVERYTHING, cert_for(scheme), MESSAGE + b"!",
                           sig, scheme)
    assert (good, bad) == (True, False)
    [ok_event] = audit.events
    assert (ok_event.operation, ok_event.outcome) == ("verifySignature",
                                                      "ok")
    assert f"scheme={scheme}" in ok_event.detail
    [bad_event] = bad_audit.events
    assert (bad_event.outcome, bad_event.reason) == ("refused",
                                                     "signatureMismatch")


@pytest.mark.parametrize(
    ("signed_with", "claimed"),
    [("ecdsaP256Sha256", "ecdsaP384Sha384"),  # curve bound to scheme
     ("rsaPssSha256", "rsaPkcs1Sha256"),      # padding bound to scheme
     ("rsaPkcs1Sha256", "rsaPkcs1Sha384"),    # digest bound to scheme
     ("ed25519", "ed448"),                    # key type bound to scheme
     ("ecdsaP256Sha256", "rsaPssSha256")],
    ids=["curve", "padding", "digest", "eddsa", "key-type"],
)
def test_scheme_that_does_not_fit_is_mismatch(signed_with: str,
                                              claimed: str) -> None:
    sig = sign(key_for(signed_with), signed_with, MESSAGE)
    ok, audit = check(EVERYTHING, cert_for(signed_with), MESSAGE, sig,
                      claimed)
    assert ok is False
    assert [e.reason for e in audit.events] == ["signatureMismatch"]


@pytest.mark.parametrize("scheme", ["rsaPkcs1Sha1", "ecdsaSha1", "ed448"])
def test_scheme_outside_policy_is_refused(scheme: str) -> None:
    sig = sign(key_for(scheme), scheme, MESSAGE)
    ok, audit = check(WEB_PKI_LENIENT, cert_for(scheme), MESSAGE, sig,
                      scheme)
    assert ok is False
    [event] = audit.events
    assert (event.outcome, event.reason) == ("refused", "weakAlgorithm")
    assert "scheme not allowed by policy" in event.detail


def test_key_outside_policy_is_refused() -> None:
    # codeSigning admits RSA-PSS but not RSA-2048 keys.
    sig = sign(key_for("rsaPssSha256"), "rsaPssSha256", MESSAGE)
    ok, audit = check(CODE_SIGNING, cert_for("rsaPssSha256"), MESSAGE,
                      sig, "rsaPssSha256")
    assert ok is False
    assert "key rsa2048 not allowed" in audit.events[0].detail


# --- consumers ---------------------------------------------------------

AT = epoch_seconds(f.T0)


def _outcome_and_sig(policy: VerificationPolicy, store: TrustStoreImpl,
                     flt: dict[str, Any], chain: list[bytes], purpose: str,
                     signed: bytes, signature: bytes, scheme: str
                     ) -> tuple[str, str, bool, bool, MemoryAuditSink]:
    audit = MemoryAuditSink()
    impl = CertVerifierImpl(policy, audit=audit, clock=FakeClock(f.T0))

    async def main() -> tuple[str, str, bool, bool]:
        async with serve(impl, pki().CertVerifier) as verifier, \
                serve(store, pki().TrustStore) as full:
            restriction = pki().TrustFilter.new_message()
            for key, value in flt.items():
                setattr(restriction, key, value)
            trust = (await full.restrict(restriction)).subset
            out = (await verifier.verifyChain(
                chain_of(*chain), trust, purpose, AT, "")).outcome
            reason = (str(out.invalid.reason) if out.which() == "invalid"
                      else "")
            leaf = CertificateImpl(parse_certificate(chain[0]))
            good = (await verifier.verifySignature(
                leaf, signed, signature, scheme)).ok
            tampered = (await verifier.verifySignature(
                leaf, signed + b"\x00", signature, scheme)).ok
            return str(out.which()), reason, bool(good), bool(tampered)

    which, reason, good, tampered = run(main)
    return which, reason, good, tampered, audit


def _fido() -> tuple[f.Issued, f.Issued, f.Issued]:
    """A FIDO-style attestation root, and an authenticator batch cert
    (WebAuthn section 8.2.1: CA false, no EKU required)."""
    root = f.ca("FIDO Attestation Root", serial=40)
    inter = f.ca("FIDO Attestation CA", root, serial=41)
    batch = f.leaf(inter, host="authenticator.capos.test",
                   key=f.ec_key("authenticator"), serial=0x42,
                   ekus=(x509.ObjectIdentifier("2.23.133.8.3"),))
    return root, inter, batch


def _webauthn_store(root: f.Issued) -> TrustStoreImpl:
    tls = f.hierarchy("TLS").root
    return TrustStoreImpl(TrustStoreCore((
        Anchor(parse_certificate(root.der), "FIDO root",
               frozenset({"webauthnRoot"})),
        Anchor(parse_certificate(tls.der), "TLS root",
               frozenset({"tlsServerAuth"})),
    )))


def test_webauthn_attestation_chain_under_webauthn_root() -> None:
    root, inter, batch = _fido()
    # authenticatorData || clientDataHash, signed by the attestation key.
    signed = b"\x49" * 37 + b"\x11" * 32
    assert isinstance(batch.key, ec.EllipticCurvePrivateKey)
    sig = batch.key.sign(signed, ec.ECDSA(hashes.SHA256()))
    which, reason, good, tampered, _ = _outcome_and_sig(
        WEB_PKI_LENIENT, _webauthn_store(root),
        {"purposes": ["webauthnRoot"]}, [batch.der, inter.der],
        "webauthnRoot", signed, sig, "ecdsaP256Sha256")
    assert (which, reason) == ("valid", "")
    assert (good, tampered) == (True, False)


def test_webauthn_store_excludes_other_roots_and_checks_signature() -> None:
    root, _inter, batch = _fido()
    signed = b"\x49" * 37 + b"\x11" * 32
    assert isinstance(batch.key, ec.EllipticCurvePrivateKey)
    sig = batch.key.sign(signed, ec.ECDSA(hashes.SHA256()))
    tls = f.hierarchy("TLS")
    # A TLS chain presented against the webauthnRoot-restricted store:
    # its root was filtered out, so there is no anchor for it.
    which, reason, _, _, _ = _outcome_and_sig(
        WEB_PKI_LENIENT, _webauthn_store(root),
        {"purposes": ["webauthnRoot"]}, tls.chain, "tlsClientAuth",
        signed, sig, "ecdsaP256Sha256")
    assert (which, reason) == ("invalid", "unknownAnchor")
    # The attestation signature is checked against the batch cert's key.
    good, _ = check(WEB_PKI_LENIENT, batch.der, signed, sig,
                    "ecdsaP256Sha256")
    bad, _ = check(WEB_PKI_LENIENT, batch.der, signed[:-1], sig,
                   "ecdsaP256Sha256")
    assert (good, bad) == (True, False)


def test_code_signing_chain_and_signed_blob() -> None:
    root = f.ca("Code Signing Root", serial=50)
    inter = f.ca("Code Signing CA", root, serial=51)
    signer = f.leaf(inter, host="release.capos.test",
                    key=f.ec_key("release-signer"), serial=0x52,
                    ekus=(ExtendedKeyUsageOID.CODE_SIGNING,))
    store = TrustStoreImpl(TrustStoreCore((
        Anchor(parse_certificate(root.der), "code root",
               frozenset({"codeSigning"})),)))
    blob = b"capos-manifest\x00" + bytes(range(256))
    assert isinstance(signer.key, ec.EllipticCurvePrivateKey)
    sig = signer.key.sign(blob, ec.ECDSA(hashes.SHA256()))
    which, reason, good, tampered, audit = _outcome_and_sig(
        CODE_SIGNING, store, {"purposes": ["codeSigning"]},
        [signer.der, inter.der], "codeSigning", blob, sig,
        "ecdsaP256Sha256")
    assert (which, reason) == ("valid", "")
    assert (good, tampered) == (True, False)
    assert [(e.operation, e.outcome) for e in audit.events] == [
        ("verifyChain", "ok"), ("verifySignature", "ok"),
        ("verifySignature", "refused")]
    assert audit.events[0].detail.startswith(
        "policy=codeSigning purpose=codeSigning")
    # The TLS leaf of another hierarchy is not a code signer.
    h = f.hierarchy()
    which, reason, _, _, _ = _outcome_and_sig(
        CODE_SIGNING, TrustStoreImpl(TrustStoreCore((
            Anchor(parse_certificate(h.root.der), "r",
                   frozenset({"codeSigning"})),))),
        {}, h.chain, "codeSigning", blob, sig, "ecdsaP256Sha256")
    assert (which, reason) == ("invalid", "badEku")


def test_rsa_pss_salt_must_equal_digest_length() -> None:
    # RFC 8446 section 4.2.3: the PSS salt is as long as the digest.
    key = key_for("rsaPssSha256")
    sig = key.sign(MESSAGE, padding.PSS(padding.MGF1(hashes.SHA256()),
                                        padding.PSS.MAX_LENGTH),
                   hashes.SHA256())
    ok, audit = check(EVERYTHING, cert_for("rsaPssSha256"), MESSAGE, sig,
                      "rsaPssSha256")
    assert ok is False
    assert [e.reason for e in audit.events] == ["signatureMismatch"]
