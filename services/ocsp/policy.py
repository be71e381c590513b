"""The pure OCSP core: building requests, checking responses (RFC 6960).

Rules :func:`check_response` keeps, in order:

1. The bytes are an OCSPResponse with status ``successful`` (4.2.1).
2. One SingleResponse carries this certificate's CertID: serial, and
   issuer name and key hashes recomputed under the CertID's own hash
   algorithm. SHA-1 CertIDs are accepted in every mode: a CertID hash
   is an identifier, not a signature (field report 6d).
3. The signer is the issuer itself, or a delegated responder whose
   certificate is in the response, was issued directly by the
   certificate's issuer (its signature verifies under the issuer's key)
   and carries id-kp-OCSPSigning (4.2.2.2). A delegate without that EKU
   is refused whoever issued it; one from another issuer is
   unauthorised. The delegate must be within its validity.
4. The signature verifies under the signer's key. A SHA-1 signature
   follows its own setting, ``allow_sha1`` (field report 6c): accepted
   with a warning when on, ``weakAlgorithm`` when off.
5. Freshness within the skew (4.2.2.1, RFC 5019 section 4):
   thisUpdate <= now + skew and now - skew <= nextUpdate. A response
   without nextUpdate is refused: this platform serves a response only
   until its nextUpdate, so one without it could never be used safely.
6. A nonce we sent, if echoed, matches (4.4.1).

No I/O, no clock: ``now`` is a parameter.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import (
    ec,
    ed448,
    ed25519,
    padding,
    rsa,
)
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from services.ocsp.errors import Problem, ResponderError, ResponseRejectedError
from services.ocsp.model import STATUS_NAMES, CheckedResponse
from services.x509.model import REASON_NAMES

_SHA1_SIGNATURES = {
    "1.2.840.113549.1.1.5",   # sha1WithRSAEncryption
    "1.2.840.10045.4.1",      # ecdsa-with-SHA1
    "1.2.840.10040.4.3",      # dsa-with-sha1
}


def key_bits(key: object) -> bytes:
    """The subjectPublicKey BIT STRING contents of a public key, the
    input of a CertID issuerKeyHash (RFC 6960 section 4.1.1)."""
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(serialization.Encoding.DER,
                                serialization.PublicFormat.PKCS1)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(serialization.Encoding.X962,
                                serialization.PublicFormat.UncompressedPoint)
    if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return key.public_bytes(serialization.Encoding.Raw,
                                serialization.PublicFormat.Raw)
    raise ValueError(f"unsupported key {type(key).__name__}")


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


def issuer_hashes(issuer: x509.Certificate,
                  algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
    """``(issuerNameHash, issuerKeyHash)`` of a CertID for ``issuer``."""
    return (_digest(algorithm, issuer.subject.public_bytes()),
            _digest(algorithm, key_bits(issuer.public_key())))


def build_request(cert: x509.Certificate, issuer: x509.Certificate,
                  algorithm: hashes.HashAlgorithm | None = None,
                  nonce: bytes | None = None) -> bytes:
    """A DER OCSPRequest for one certificate.

    :param algorithm: the CertID hash; SHA-1 by default, as RFC 5019
        section 2.1.1 asks of lightweight clients.
    """
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        cert, issuer, algorithm or hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce),
                                        critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def _verify(key: object, signature: bytes, data: bytes,
            algorithm: hashes.HashAlgorithm | None) -> None:
    if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
        key.verify(signature, data, padding.PKCS1v15(), algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
        key.verify(signature, data, ec.ECDSA(algorithm))
    elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        key.verify(signature, data)
    else:
        raise InvalidSignature("key and signature algorithm do not fit")


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _has_ocsp_signing(cert: x509.Certificate) -> bool:
    try:
        eku = cert.extensions.get_extension_for_class(
            x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.OCSP_SIGNING in eku


def _describe(cert: x509.Certificate) -> str:
    return f"{cert.subject.rfc4514_string()} serial={cert.serial_number:x}"


def _signer(resp: ocsp.OCSPResponse, issuer: x509.Certificate,
            now: dt.datetime, skew: dt.timedelta) -> x509.Certificate:
    """The certificate whose key signed ``resp``, once authorised."""

    def named(cert: x509.Certificate) -> bool:
        if resp.responder_key_hash is not None:
            return resp.responder_key_hash == _digest(
                hashes.SHA1(), key_bits(cert.public_key()))
        return resp.responder_name == cert.subject

    if named(issuer):
        return issuer
    for cand in resp.certificates:
        if not named(cand):
            continue
        if not _signed_by(cand, issuer):
            raise ResponseRejectedError(
                Problem.unauthorizedResponder,
                f"responder {_describe(cand)} was not issued by "
                f"{issuer.subject.rfc4514_string()}")
        if not _has_ocsp_signing(cand):
            raise ResponseRejectedError(
                Problem.responderNotOcspSigning,
                f"responder {_describe(cand)} lacks id-kp-OCSPSigning")
        if not (cand.not_valid_before_utc - skew <= now
                <= cand.not_valid_after_utc + skew):
            raise ResponseRejectedError(
                Problem.responderExpired,
                f"responder {_describe(cand)} is outside its validity",
                not_after=cand.not_valid_after_utc, at=now)
        return cand
    raise ResponseRejectedError(Problem.unauthorizedResponder,
                                "no authorised responder certificate")


def load(der: bytes) -> ocsp.OCSPResponse:
    """Parse, and require ``successful``.

    :raises ResponderError: ``malformed`` or ``unsuccessful``.
    """
    try:
        resp = ocsp.load_der_ocsp_response(der)
    except ValueError as err:
        raise ResponderError(Problem.malformed,
                             f"not an OCSP response: {err}") from err
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise ResponderError(Problem.unsuccessful,
                             f"responseStatus {resp.response_status.name}")
    return resp


def check_response(der: bytes, cert: x509.Certificate,
                   issuer: x509.Certificate, now: dt.datetime, *,
                   skew: dt.timedelta = dt.timedelta(seconds=300),
                   allow_sha1: bool = True,
                   nonce: bytes | None = None) -> CheckedResponse:
    """Check one DER response for ``cert`` issued by ``issuer``.

    :raises ResponderError: malformed or unsuccessful.
    :raises ResponseRejectedError: with a :class:`Problem` among
        ``ocspMismatch``, ``unauthorizedResponder``,
        ``responderNotOcspSigning``, ``responderExpired``,
        ``badSignature``, ``sha1Signature``, ``unsupportedAlgorithm``,
        ``ocspStale``, ``ocspNotYetValid``, ``ocspNoNextUpdate``.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    resp = load(der)
    single = None
    for one in resp.responses:
        if one.serial_number != cert.serial_number:
            continue
        names, keys = issuer_hashes(issuer, one.hash_algorithm)
        if cert.issuer == issuer.subject and (
                one.issuer_name_hash, one.issuer_key_hash) == (names, keys):
            single = one
            break
    if single is None:
        raise ResponseRejectedError(
            Problem.ocspMismatch,
            f"no response for serial {cert.serial_number:x} under "
            f"{issuer.subject.rfc4514_string()}",
            serial=cert.serial_number)
    signer = _signer(resp, issuer, now, skew)
    warnings: list[str] = []
    oid = resp.signature_algorithm_oid.dotted_string
    if oid in _SHA1_SIGNATURES:
        if not allow_sha1:
            raise ResponseRejectedError(
                Problem.sha1Signature,
                "SHA-1 signed response and ocsp_crl_allow_sha1 is off")
        warnings.append("sha1-signed response accepted "
                        "(ocsp_crl_allow_sha1)")
    try:
        algorithm = resp.signature_hash_algorithm
    except UnsupportedAlgorithm as err:
        raise ResponseRejectedError(
            Problem.unsupportedAlgorithm,
            f"signature algorithm {oid} unsupported") from err
    try:
        _verify(signer.public_key(), resp.signature,
                resp.tbs_response_bytes, algorithm)
    except InvalidSignature as err:
        raise ResponseRejectedError(
            Problem.badSignature,
            f"signature does not verify under {_describe(signer)}") from err
    this_update = single.this_update_utc
    next_update = single.next_update_utc
    if this_update > now + skew:
        raise ResponseRejectedError(
            Problem.ocspNotYetValid, "thisUpdate is in the future",
            this_update=this_update, at=now)
    if next_update is None:
        raise ResponseRejectedError(Problem.ocspNoNextUpdate,
                                    "response has no nextUpdate")
    if next_update < now - skew:
        raise ResponseRejectedError(
            Problem.ocspStale, f"nextUpdate {next_update.isoformat()} "
            "has passed", next_update=next_update, at=now)
    if nonce is not None:
        try:
            echoed = resp.extensions.get_extension_for_class(
                x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            echoed = None
        if echoed is not None and echoed != nonce:
            raise ResponseRejectedError(Problem.ocspMismatch,
                                        "nonce does not match the request")
    status = STATUS_NAMES[single.certificate_status]
    revoked_at = None
    reason = "unspecified"
    if status == "revoked":
        revoked_at = single.revocation_time_utc
        if single.revocation_reason is not None:
            reason = REASON_NAMES[single.revocation_reason]
    return CheckedResponse(
        der=der, status=status, serial=single.serial_number,
        this_update=this_update, next_update=next_update,
        produced_at=resp.produced_at_utc, revocation_time=revoked_at,
        revocation_reason=reason, signer=_describe(signer),
        warnings=tuple(warnings))
