"""Answering OCSP requests (RFC 6960 sections 2.2, 2.3 and 4.2), with
cryptography's ``OCSPResponseBuilder``.

:class:`ResponderCore` is sans-IO: request bytes and ``now`` in,
response bytes out. Rules it keeps:

- A request it cannot parse gets ``malformedRequest``.
- A CertID whose issuer hashes (under the request's own algorithm,
  SHA-1 included) are not this CA's gets ``unauthorized`` (2.3): this
  responder speaks only for its CA.
- Each known serial is ``good`` or ``revoked`` (time and reason);
  anything else ``unknown`` (2.2).
- thisUpdate is ``now``, nextUpdate ``now + validity``; the response
  is signed by the delegated responder (4.2.2.2), named by key hash,
  its certificate included; a request nonce is echoed (4.4.1).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from services._runtime import deferred
from services.ocsp.model import StatusAnswer
from services.ocsp.policy import issuer_hashes
from services.x509.model import REVOCATION_REASONS

_STATUS = {"good": ocsp.OCSPCertStatus.GOOD,
           "revoked": ocsp.OCSPCertStatus.REVOKED,
           "unknown": ocsp.OCSPCertStatus.UNKNOWN}


@deferred.dataclass(frozen=True)
class Signer:
    """A key and the certificate that authorises it to sign responses."""

    key: Any
    cert: x509.Certificate


StatusSource = Callable[[int], StatusAnswer]
SignerSource = Callable[[], Signer]


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        Encoding.DER)


class ResponderCore:
    """Signs responses for one CA's certificates."""

    def __init__(self, issuer: x509.Certificate, signer: SignerSource,
                 status: StatusSource, validity: dt.timedelta) -> None:
        if validity <= dt.timedelta(0):
            raise ValueError("validity must be positive")
        self.issuer = issuer
        self._signer = signer
        self._status = status
        self.validity = validity
        self._hashes: dict[str, tuple[bytes, bytes]] = {}

    def _ours(self, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
        known = self._hashes.get(algorithm.name)
        if known is None:
            known = issuer_hashes(self.issuer, algorithm)
            self._hashes[algorithm.name] = known
        return known

    def respond(self, request_der: bytes, now: dt.datetime) -> bytes:
        """The DER response to one DER request."""
        try:
            req = ocsp.load_der_ocsp_request(request_der)
        except ValueError:
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        # NOTE: cryptography parses exactly one CertID per request; RFC
        # 6960 allows several, which it refuses as malformed.
        if (req.issuer_name_hash, req.issuer_key_hash) != self._ours(
                req.hash_algorithm):
            return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        answer = self._status(req.serial_number)
        signer = self._signer()
        revoked = answer.status == "revoked"
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                issuer_name_hash=req.issuer_name_hash,
                issuer_key_hash=req.issuer_key_hash,
                serial_number=req.serial_number,
                algorithm=req.hash_algorithm,
                cert_status=_STATUS[answer.status],
                this_update=now, next_update=now + self.validity,
                revocation_time=answer.revocation_time if revoked else None,
                revocation_reason=(
                    REVOCATION_REASONS[answer.revocation_reason]
                    if revoked and answer.revocation_reason != "unspecified"
                    else None))
            .responder_id(ocsp.OCSPResponderEncoding.HASH, signer.cert)
            .certificates([signer.cert])
        )
        try:
            nonce = req.extensions.get_extension_for_class(x509.OCSPNonce)
            builder = builder.add_extension(nonce.value, critical=False)
        except x509.ExtensionNotFound:
            pass
        algorithm = None if isinstance(
            signer.key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
        return builder.sign(signer.key, algorithm).public_bytes(Encoding.DER)


def ca_status(ca: Any) -> StatusSource:
    """A status source over a :class:`services.ca.core.PrivateCA`."""

    def lookup(serial: int) -> StatusAnswer:
        record = ca.lookup(serial)
        if record is None:
            return StatusAnswer("unknown")
        if record.revoked_at is not None:
            return StatusAnswer("revoked", record.revoked_at, record.reason)
        return StatusAnswer("good")

    return lookup


def ca_signer(ca: Any) -> SignerSource:
    """The CA's current delegated responder, as a signer source."""

    def current() -> Signer:
        cred = ca.responder()
        return Signer(cred.key, cred.cert)

    return current


def for_ca(ca: Any, validity: dt.timedelta) -> ResponderCore:
    """A responder answering for a :class:`PrivateCA`."""
    return ResponderCore(ca.cert, ca_signer(ca), ca_status(ca), validity)
