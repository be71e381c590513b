"""``PrivateKey``: key material whose only contract is "compute with me".

The key never leaves the process that holds it. Holders may sign a
message under a scheme that fits the key, read the public half, and ask
for a PKCS#10 certification request over names (proof of possession for
ACME, without handing the key to the ACME client).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from services._runtime.boundary import CapabilityError
from services._runtime.schema import pki
from services.x509.model import key_algorithm
from services.x509.publickey_impl import PublicKeyImpl

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "Sha1": hashes.SHA1, "Sha256": hashes.SHA256,
    "Sha384": hashes.SHA384, "Sha512": hashes.SHA512}


def sign_with(key: Any, message: bytes, scheme: str) -> bytes:
    """Sign ``message`` under a schema ``SignatureScheme`` name.

    :raises CapabilityError: ``policyViolation`` when the scheme does not
        fit the key.
    """
    if scheme == "ed25519" and isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    suffix = next((s for s in _HASHES if scheme.endswith(s)), None)
    if suffix is not None:
        digest = _HASHES[suffix]()
        if scheme.startswith("ecdsa") and isinstance(
            key, ec.EllipticCurvePrivateKey
        ):
            return key.sign(message, ec.ECDSA(digest))
        if scheme.startswith("rsaPss") and isinstance(key, rsa.RSAPrivateKey):
            return key.sign(message, padding.PSS(
                padding.MGF1(digest), padding.PSS.DIGEST_LENGTH), digest)
        if scheme.startswith("rsaPkcs1") and isinstance(
            key, rsa.RSAPrivateKey
        ):
            return key.sign(message, padding.PKCS1v15(), digest)
    raise CapabilityError(
        "policyViolation",
        f"scheme {scheme} does not fit a {key_algorithm(key.public_key())} "
        "key",
    )


def certification_request(key: Any, names: list[tuple[str, str]]) -> bytes:
    """A PKCS#10 request for ``(type, value)`` identifiers, DER."""
    if not names:
        raise CapabilityError("policyViolation", "no identifiers")
    sans: list[x509.GeneralName] = []
    for kind, value in names:
        if kind == "dns":
            sans.append(x509.DNSName(value))
        elif kind == "ip":
            sans.append(x509.IPAddress(ipaddress.ip_address(value)))
        else:
            raise CapabilityError(
                "policyViolation", f"unsupported identifier type {kind!r}"
            )
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else (
        hashes.SHA256()
    )
    return csr.sign(key, algorithm).public_bytes(serialization.Encoding.DER)


class PrivateKeyImpl(pki().PrivateKey.Server):  # type: ignore[misc]
    """A private key held in this process."""

    def __init__(self, key: Any) -> None:
        self._key = key
        self._spki = key.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )

    async def sign(self, message: bytes, scheme: Any, _context: Any,
                   **kwargs: Any) -> bytes:
        return sign_with(self._key, bytes(message), str(scheme))

    async def publicKey(self, _context: Any, **kwargs: Any) -> Any:
        return PublicKeyImpl(self._key.public_key(), self._spki)

    async def algorithm(self, _context: Any, **kwargs: Any) -> str:
        return key_algorithm(self._key.public_key())

    async def certificationRequest(self, names: Any, _context: Any,
                                   **kwargs: Any) -> bytes:
        return certification_request(
            self._key, [(n.type, n.value) for n in names]
        )
