"""Fetching and checking one OCSP status (RFC 6960 section 4.1 and
appendix A.1): the shared core of the OcspResponder client capability
and the stapler.

Builds the request with cryptography's ``OCSPRequestBuilder`` (a fresh
nonce from the injected random source), POSTs it through an
:class:`~services.ocsp.transport.OcspTransport` to the certificate's AIA
OCSP URL, and checks the answer with
:func:`services.ocsp.policy.check_response`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from services.ocsp import policy
from services.ocsp.errors import Problem, ResponseRejectedError
from services.ocsp.model import CheckedResponse, responder_url
from services.ocsp.transport import OcspTransport


@dataclasses.dataclass(frozen=True)
class ClientSettings:
    """How a client checks responses.

    :param skew: tolerance on thisUpdate/nextUpdate (the verification
        policy's ``clockSkewSeconds``).
    :param allow_sha1: ``ocsp_crl_allow_sha1`` (field report 6c).
    :param cert_id_hash: the CertID hash the request uses.
    :param use_nonce: send an RFC 6960 4.4.1 nonce.
    """

    skew: dt.timedelta = dt.timedelta(seconds=300)
    allow_sha1: bool = True
    cert_id_hash: str = "sha1"
    use_nonce: bool = True


DEFAULT_SETTINGS = ClientSettings()

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha256": hashes.SHA256,
    "sha384": hashes.SHA384, "sha512": hashes.SHA512}


def fetch_status(cert: x509.Certificate, issuer: x509.Certificate,
                 transport: OcspTransport, now: dt.datetime,
                 settings: ClientSettings = DEFAULT_SETTINGS,
                 random: Callable[[int], bytes] = os.urandom,
                 url: str = "") -> CheckedResponse:
    """Ask ``cert``'s responder and check the answer.

    :param url: overrides the AIA URL (used by tests of odd responders).
    :raises UnavailableError: the responder is unreachable.
    :raises ResponseRejectedError: ``noResponderUrl``, or see
        :func:`policy.check_response`.
    :raises ResponderError: malformed or unsuccessful answer.
    """
    target = url or responder_url(cert)
    if not target:
        raise ResponseRejectedError(Problem.noResponderUrl,
                                    "certificate has no AIA OCSP URL")
    nonce = random(16) if settings.use_nonce else None
    request = policy.build_request(cert, issuer,
                                   _HASHES[settings.cert_id_hash](), nonce)
    der = transport.post(target, request)
    return policy.check_response(der, cert, issuer, now,
                                 skew=settings.skew,
                                 allow_sha1=settings.allow_sha1,
                                 nonce=nonce)
