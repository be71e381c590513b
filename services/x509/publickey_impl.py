"""``PublicKey`` server over a certificate's public key, and the one
signature check (:func:`verify_with`) every SignatureScheme goes through."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import (
    ec,
    ed448,
    ed25519,
    padding,
    rsa,
)

from services._runtime.schema import pki
from services.x509.boundary import capability_error
from services.x509.errors import Reason
from services.x509.model import key_algorithm

_HASH: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "Sha1": hashes.SHA1, "Sha256": hashes.SHA256,
         "Sha384": hashes.SHA384, "Sha512": hashes.SHA512}


#: Curve each ECDSA scheme binds (RFC 8446 section 4.2.3); the legacy
#: ``ecdsaSha1`` binds none.
_CURVE = {"ecdsaP256Sha256": "secp256r1", "ecdsaP384Sha384": "secp384r1",
          "ecdsaP521Sha512": "secp521r1"}


def verify_with(key: Any, message: bytes, signature: bytes,
                scheme: str) -> bool:
    """Check one signature under a schema SignatureScheme name.

    The scheme binds the key type (and, for ECDSA, the curve, as TLS 1.3
    does; RSA-PSS salt length equals the digest length, RFC 8446 section
    4.2.3). ECDSA signatures are DER ``Ecdsa-Sig-Value`` (RFC 3279).

    :returns: whether the signature verifies; a scheme that does not fit
        the key, or an unknown scheme, is ``False``, never an exception.
    """
    try:
        if scheme == "ed25519":
            if not isinstance(key, ed25519.Ed25519PublicKey):
                return False
            key.verify(signature, message)
            return True
        if scheme == "ed448":
            if not isinstance(key, ed448.Ed448PublicKey):
                return False
            key.verify(signature, message)
            return True
        suffix = next((s for s in _HASH if scheme.endswith(s)), None)
        if suffix is None:
            return False
        digest = _HASH[suffix]()
        if scheme.startswith("ecdsa"):
            if not isinstance(key, ec.EllipticCurvePublicKey):
                return False
            curve = _CURVE.get(scheme)
            if curve is not None and key.curve.name != curve:
                return False
            key.verify(signature, message, ec.ECDSA(digest))
        elif scheme.startswith("rsaPss"):
            if not isinstance(key, rsa.RSAPublicKey):
                return False
            key.verify(signature, message, padding.PSS(
                padding.MGF1(digest), padding.PSS.DIGEST_LENGTH), digest)
        elif scheme.startswith("rsaPkcs1"):
            if not isinstance(key, rsa.RSAPublicKey):
                return False
            key.verify(signature, message, padding.PKCS1v15(), digest)
        else:
            return False
        return True
    except (InvalidSignature, ValueError):
        return False


class PublicKeyImpl(pki().PublicKey.Server):  # type: ignore[misc]
    """A public key taken from a certificate's SPKI."""

    def __init__(self, key: Any, spki_der: bytes) -> None:
        self._key = key
        self._spki = spki_der

    async def der(self, _context: Any, **kwargs: Any) -> bytes:
        return self._spki

    async def verify(self, message: bytes, signature: bytes, scheme: Any,
                     _context: Any, **kwargs: Any) -> bool:
        return verify_with(self._key, message, signature, str(scheme))

    async def algorithm(self, _context: Any, **kwargs: Any) -> str:
        name = key_algorithm(self._key)
        if not name:
            raise capability_error(Reason.weakAlgorithm,
                                   "key algorithm outside the schema")
        return name
