"""``AcmeClient`` (RFC 8555) over the ``acme`` library, as a capability.

The client holds no authority of its own beyond the ACME directory URL
and the TrustStore it reaches the server through:

- JWS signatures are made by the account's ``PrivateKey`` capability
  (:class:`CapabilityKey` bridges josepy's synchronous signing to it);
- the certification request is made by the certificate's ``PrivateKey``
  capability, so the client never sees either key;
- a challenge is published only through the ``ChallengeSolver`` the
  caller hands in, which is scoped to one thing.

The ``acme`` library is synchronous (requests); its calls run in a worker
thread while capability calls stay on the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import josepy as jose
from acme import challenges, client, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from services._runtime import audit as _audit
from services._runtime.boundary import CapabilityError
from services._runtime.clock import Clock
from services._runtime.schema import pki
from services.acme.transport import TrustStoreAdapter, context_from_anchors
from services.x509.chain_impl import CertificateChainImpl
from services.x509.model import parse_certificate

log = logging.getLogger(__name__)

_EC_SCHEMES = {"sha256": "ecdsaP256Sha256", "sha384": "ecdsaP384Sha384",
               "sha512": "ecdsaP521Sha512"}
_EC_ALGS = {"secp256r1": jose.ES256, "secp384r1": jose.ES384,
            "secp521r1": jose.ES512}
USER_AGENT = "capos-acme/0.1"


#: badNonce retries per request (RFC 8555 section 6.5; field report 16).
BAD_NONCE_RETRIES = 3


class RetryingNetwork(client.ClientNetwork):  # type: ignore[misc]
    """``ClientNetwork`` whose POSTs retry ``badNonce`` up to
    :data:`BAD_NONCE_RETRIES` times, each with the fresh nonce the error
    carried. The library retries only once, and servers that reject a
    share of valid nonces (pebble does 5% by default) then fail about
    one issuance in forty."""

    def post(self, *args: Any, **kwargs: Any) -> Any:
        for attempt in range(BAD_NONCE_RETRIES + 1):
            try:
                return self._post_once(*args, **kwargs)
            except messages.Error as error:
                if error.code != "badNonce" or attempt == BAD_NONCE_RETRIES:
                    raise
                log.debug("badNonce, retrying (%d)", attempt + 1)
        raise AssertionError("unreachable")


class CapabilityKey:
    """An EC private key whose ``sign`` is a ``PrivateKey`` capability call.

    Called from the worker thread; the call itself runs on the loop.
    """

    def __init__(self, cap: Any, public: Any,
                 loop: asyncio.AbstractEventLoop) -> None:
        self._cap = cap
        self._public = public
        self._loop = loop
        self.curve = public.curve
        self.key_size = public.key_size

    def public_key(self) -> Any:
        return self._public

    def sign(self, data: bytes, algorithm: Any) -> bytes:
        scheme = _EC_SCHEMES[algorithm.algorithm.name]
        fut = asyncio.run_coroutine_threadsafe(
            self._sign(data, scheme), self._loop
        )
        return fut.result(60)

    async def _sign(self, data: bytes, scheme: str) -> bytes:
        return bytes((await self._cap.sign(message=data,
                                           scheme=scheme)).signature)


class CapabilityJWK(jose.JWKEC):
    """A JWK over a :class:`CapabilityKey`: it serialises (and
    thumbprints) as its public half, the only half it can see."""

    __slots__ = ("key",)

    def public_key(self) -> jose.JWKEC:
        return jose.JWKEC(key=self.key.public_key())

    def fields_to_partial_json(self) -> dict[str, Any]:
        return self.public_key().fields_to_partial_json()  # type: ignore[no-any-return]


async def public_of(key_cap: Any) -> Any:
    """The cryptography public key behind a ``PrivateKey`` capability."""
    pk = (await key_cap.publicKey()).pk
    der = bytes((await pk.der()).encoded)
    return serialization.load_der_public_key(der)


class AcmeAccountImpl(pki().AcmeAccount.Server):  # type: ignore[misc]
    """An account: its URL, and the key capability that controls it."""

    def __init__(self, regr: messages.RegistrationResource,
                 net: client.ClientNetwork) -> None:
        self.regr = regr
        self.net = net

    async def info(self, _context: Any, **kwargs: Any) -> None:
        r = _context.results
        body = self.regr.body
        r.url = self.regr.uri or ""
        r.contact = list(body.contact or ())
        r.status = str(body.status or "valid")
        r.termsOfServiceAgreed = bool(body.terms_of_service_agreed)


class AcmeClientImpl(pki().AcmeClient.Server):  # type: ignore[misc]
    """RFC 8555 client bound to one directory and one TrustStore."""

    def __init__(self, directory_url: str, anchors_der: list[bytes],
                 clock: Clock, audit: _audit.AuditSink,
                 service: str = "acme", timeout: float = 90.0) -> None:
        self._url = directory_url
        self._ctx = context_from_anchors(anchors_der)
        self._clock = clock
        self._audit = audit
        self._service = service
        self._timeout = timeout
        self._accounts: list[AcmeAccountImpl] = []

    def _net(self, key: Any, alg: Any) -> client.ClientNetwork:
        net = RetryingNetwork(key, alg=alg, user_agent=USER_AGENT)
        net.session.mount("https://", TrustStoreAdapter(self._ctx))
        net.session.mount("http://", TrustStoreAdapter(self._ctx))
        return net

    def _emit(self, operation: str, outcome: str, subject: tuple[str, ...],
              reason: str = "", detail: str = "") -> None:
        self._audit.emit(_audit.AuditEvent(
            at=self._clock.now(), service=self._service,
            capability="acmeClient", operation=operation, outcome=outcome,
            reason=reason, subject=subject, detail=detail,
        ))

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except errors.Error as err:
            raise CapabilityError("acmeError", _describe(err)) from err
        except messages.Error as err:
            raise CapabilityError("acmeError", _describe(err)) from err
        except OSError as err:
            raise CapabilityError(
                "unavailable", f"ACME server {self._url}: {err}"
            ) from err

    async def directory(self, _context: Any, **kwargs: Any) -> None:
        net = self._net(None, jose.ES256)
        d = await self._in_thread(client.ClientV2.get_directory,
                                  self._url, net)
        meta = d.meta
        r = _context.results
        r.url = self._url
        r.meta.termsOfService = str(meta.terms_of_service or "")
        r.meta.website = str(meta.website or "")
        r.meta.caaIdentities = list(meta.caa_identities or ())
        r.meta.externalAccountRequired = bool(
            meta.external_account_required
        )

    async def register(self, accountKey: Any, contact: Any, _context: Any,
                       **kwargs: Any) -> Any:
        public = await public_of(accountKey)
        alg = _EC_ALGS.get(getattr(getattr(public, "curve", None),
                                   "name", ""))
        if alg is None:
            raise CapabilityError(
                "policyViolation", "account keys must be ECDSA P-256/384/521"
            )
        loop = asyncio.get_running_loop()
        jwk = CapabilityJWK(key=CapabilityKey(accountKey, public, loop))
        net = self._net(jwk, alg)
        directory = await self._in_thread(
            client.ClientV2.get_directory, self._url, net
        )
        acme = client.ClientV2(directory, net)
        reg = messages.NewRegistration.from_data(
            email=",".join(c.removeprefix("mailto:") for c in contact)
            or None,
            terms_of_service_agreed=True,
        )
        regr = await self._in_thread(acme.new_account, reg)
        account = AcmeAccountImpl(regr, net)
        self._accounts.append(account)
        self._emit("register", "ok", (regr.uri or "",))
        return account

    async def order(self, account: Any, identifiers: Any, certKey: Any,
                    solver: Any, _context: Any, **kwargs: Any) -> Any:
        local = await self._local_account(account)
        names = [(i.type, i.value) for i in identifiers]
        subject = tuple(f"{t}:{v}" for t, v in names)
        started = self._clock.monotonic()
        try:
            chain = await self._issue(local, identifiers, certKey, solver)
        except CapabilityError as err:
            self._emit("order", "error", subject, err.reason, err.detail)
            raise
        leaf = x509.load_der_x509_certificate(chain[0])
        self._emit(
            "order", "ok",
            (*subject, leaf.fingerprint(hashes.SHA256()).hex()),
            detail=f"issued in {self._clock.monotonic() - started:.3f} s",
        )
        return CertificateChainImpl([parse_certificate(d) for d in chain])

    async def _local_account(self, account: Any) -> AcmeAccountImpl:
        url = (await account.info()).url
        for local in self._accounts:
            if local.regr.uri == url:
                return local
        raise CapabilityError(
            "policyViolation", "account was not registered by this client"
        )

    async def _issue(self, local: AcmeAccountImpl, identifiers: Any,
                     cert_key: Any, solver: Any) -> list[bytes]:
        directory = await self._in_thread(
            client.ClientV2.get_directory, self._url, local.net
        )
        acme = client.ClientV2(directory, local.net)
        csr_der = bytes((await cert_key.certificationRequest(
            names=identifiers)).der)
        csr_pem = x509.load_der_x509_csr(csr_der).public_bytes(
            serialization.Encoding.PEM
        )
        orderr = await self._in_thread(acme.new_order, csr_pem)
        supported = {str(t) for t in (await solver.supports()).types}
        published = []
        try:
            for authzr in orderr.authorizations:
                if authzr.body.status == messages.STATUS_VALID:
                    continue
                challb = _pick(authzr, supported)
                response, validation = challb.response_and_validation(
                    local.net.key
                )
                chall = {
                    "type": "http01", "token": challb.chall.encode("token"),
                    "url": challb.uri,
                    "identifier": {
                        "type": authzr.body.identifier.typ.name,
                        "value": authzr.body.identifier.value,
                    },
                    "keyAuthorization": validation,
                }
                ok = (await solver.solve(challenge=chall)).ok
                if not ok:
                    raise CapabilityError(
                        "policyViolation",
                        f"solver refused {chall['identifier']['value']}",
                    )
                published.append(chall)
                await self._in_thread(acme.answer_challenge, challb, response)
            # The acme library compares against naive local time.
            deadline = self._clock.now().astimezone().replace(
                tzinfo=None
            ) + dt.timedelta(seconds=self._timeout)
            done = await self._in_thread(
                acme.poll_and_finalize, orderr, deadline
            )
        finally:
            for chall in published:
                await solver.cleanup(challenge=chall)
        return _split_pem(done.fullchain_pem)

    async def renew(self, chain: Any, certKey: Any, solver: Any,
                    _context: Any, **kwargs: Any) -> Any:
        raise CapabilityError("unimplemented", "renew lands with issue #4")

    async def revoke(self, cert: Any, reason: Any, _context: Any,
                     **kwargs: Any) -> None:
        raise CapabilityError("unimplemented", "revoke lands with issue #4")


def _pick(authzr: messages.AuthorizationResource,
          supported: set[str]) -> messages.ChallengeBody:
    for challb in authzr.body.challenges:
        if isinstance(challb.chall, challenges.HTTP01) and (
            "http01" in supported
        ):
            return challb
    offered = ", ".join(c.chall.typ for c in authzr.body.challenges)
    raise CapabilityError(
        "policyViolation",
        f"no challenge the solver supports ({sorted(supported)}) among "
        f"{offered} for {authzr.body.identifier.value}",
    )


def _split_pem(pem: str) -> list[bytes]:
    certs = x509.load_pem_x509_certificates(pem.encode())
    return [c.public_bytes(serialization.Encoding.DER) for c in certs]


def _describe(err: BaseException) -> str:
    text = str(err).replace("\n", " ")
    return text[:300]
