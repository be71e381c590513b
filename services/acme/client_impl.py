"""``AcmeClient`` and ``AcmeAccount`` (RFC 8555) over the ``acme`` library.

The client holds no authority of its own beyond the ACME directory URL
and the TrustStore it reaches the server through:

- JWS signatures are made by the account's ``PrivateKey`` capability
  (:class:`CapabilityKey` bridges josepy's synchronous signing to it);
- the certification request is made by the certificate's ``PrivateKey``
  capability, so the client never sees either key;
- a challenge is published only through the ``ChallengeSolver`` the
  caller hands in, which is scoped to one thing. Every challenge is
  handed to the solver before any is answered, so a name the solver does
  not cover fails before the server is asked to validate anything.

What real servers do (field reports 16, 17, 18): ``badNonce`` is
retried with the nonce the error carried (section 6.5); orders and
authorizations are polled honouring ``Retry-After`` (section 7.4), with
bounded backoff when it is absent and a timeout of their own
(:mod:`services.acme.policy`); ``rateLimited`` is raised at once with
the server's problem document; key rollover (section 7.3.5) builds the
inner JWS with the library's ``jws`` module, signed by the new key.

The ``acme`` library is synchronous (requests); its calls run in a worker
thread while capability calls and waits stay on the event loop. Waits go
through an injected ``sleep`` so tests run on a fake clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import capnp
import josepy as jose
import requests
from acme import challenges, client, errors, jws, messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from services._runtime import audit as _audit
from services._runtime.boundary import CapabilityError, parse_remote
from services._runtime.clock import Clock, epoch_seconds
from services._runtime.schema import pki
from services.acme import policy
from services.acme.errors import (
    AcmeBadNonce,
    AcmeError,
    AcmeKeyInUse,
    AcmeOrderInvalid,
    AcmeOrderTimeout,
    AcmeRateLimited,
    AcmeUnavailable,
)
from services.acme.transport import TrustStoreAdapter, context_from_anchors
from services.x509.chain_impl import CertificateChainImpl
from services.x509.model import parse_certificate

log = logging.getLogger(__name__)

_EC_ALGS = {"secp256r1": (jose.ES256, "ecdsaP256Sha256"),
            "secp384r1": (jose.ES384, "ecdsaP384Sha384"),
            "secp521r1": (jose.ES512, "ecdsaP521Sha512")}
_RSA_SCHEMES = {"sha256": "rsaPkcs1Sha256", "sha384": "rsaPkcs1Sha384",
                "sha512": "rsaPkcs1Sha512"}
USER_AGENT = "capos-acme/0.1"

#: badNonce retries per request (RFC 8555 section 6.5; field report 16).
BAD_NONCE_RETRIES = 3

#: ACME challenge type -> schema AcmeChallengeType, in preference order.
CHALLENGE_TYPES = {"http-01": "http01", "dns-01": "dns01",
                   "tls-alpn-01": "tlsAlpn01"}



@challenges.ChallengeResponse.register
class TLSALPN01Response(challenges.KeyAuthorizationChallengeResponse):
    """tls-alpn-01 response (RFC 8737 section 3): ``{}`` like the
    others. acme 5 dropped the type; it is registered here through the
    library's own registry."""

    typ = "tls-alpn-01"


@challenges.Challenge.register
class TLSALPN01(challenges.KeyAuthorizationChallenge):
    """tls-alpn-01 challenge; the solver derives the certificate from
    the key authorization."""

    response_cls = TLSALPN01Response
    typ = response_cls.typ

    def validation(self, account_key: jose.JWK, **kwargs: Any) -> str:
        return str(self.key_authorization(account_key))


Sleep = Callable[[float], Awaitable[None]]
AdapterFactory = Callable[[Any], requests.adapters.BaseAdapter]


class RetryingNetwork(client.ClientNetwork):
    """``ClientNetwork`` whose POSTs retry ``badNonce`` up to
    :data:`BAD_NONCE_RETRIES` times, each with the fresh nonce the error
    carried (no extra newNonce request). The library retries only once,
    and servers that reject a share of valid nonces (pebble does 5% by
    default) then fail about one issuance in forty.

    It keeps the last response, so callers can read headers the library
    drops (``Retry-After`` of a finalize or of a 429).
    """

    last_response: requests.Response | None = None

    def post(self, *args: Any, **kwargs: Any) -> Any:
        for attempt in range(BAD_NONCE_RETRIES + 1):
            try:
                return self._post_once(*args, **kwargs)
            except messages.Error as error:
                if error.code != "badNonce" or attempt == BAD_NONCE_RETRIES:
                    raise
                log.debug("badNonce, retrying (%d)", attempt + 1)
        raise AssertionError("unreachable")

    def _post_once(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super()._post_once(*args, **kwargs)
        except (messages.Error, errors.ClientError):
            # An error response carries a fresh nonce too (section 6.5).
            resp = self.last_response
            if resp is not None and self.REPLAY_NONCE_HEADER in resp.headers:
                self._add_nonce(resp)
            raise

    def _send_request(self, method: str, url: str, *args: Any,
                      **kwargs: Any) -> requests.Response:
        self.last_response = None
        resp = super()._send_request(method, url, *args, **kwargs)
        self.last_response = resp
        return resp


class CapabilityKey:
    """A private key whose ``sign`` is a ``PrivateKey`` capability call.

    josepy calls ``sign(data, ec.ECDSA(h))`` for EC keys and
    ``sign(data, padding, h)`` for RSA keys, from the worker thread; the
    capability call itself runs on the loop.
    """

    def __init__(self, cap: Any, public: Any,
                 loop: asyncio.AbstractEventLoop) -> None:
        self._cap = cap
        self._public = public
        self._loop = loop
        self.key_size = public.key_size
        if isinstance(public, ec.EllipticCurvePublicKey):
            self.curve = public.curve

    def public_key(self) -> Any:
        return self._public

    def public_numbers(self) -> Any:
        return self._public.public_numbers()

    def sign(self, data: bytes, *args: Any) -> bytes:
        if isinstance(self._public, ec.EllipticCurvePublicKey):
            scheme = _EC_ALGS[self._public.curve.name][1]
        else:
            pad, digest = args
            if not isinstance(pad, padding.PKCS1v15):
                raise CapabilityError("policyViolation",
                                      "only RS* JWS algorithms are used")
            scheme = _RSA_SCHEMES[digest.name]
        fut = asyncio.run_coroutine_threadsafe(
            self._sign(data, scheme), self._loop
        )
        return fut.result(60)

    async def _sign(self, data: bytes, scheme: str) -> bytes:
        return bytes((await self._cap.sign(message=data,
                                           scheme=scheme)).signature)


class CapabilityJWK(jose.JWKEC):
    """An EC JWK over a :class:`CapabilityKey`: it serialises (and
    thumbprints) as its public half, the only half it can see."""

    __slots__ = ("key",)

    def public_key(self) -> jose.JWKEC:
        return jose.JWKEC(key=self.key.public_key())

    def fields_to_partial_json(self) -> dict[str, Any]:
        return self.public_key().fields_to_partial_json()


class CapabilityJWKRSA(jose.JWKRSA):
    """An RSA JWK over a :class:`CapabilityKey` (see CapabilityJWK)."""

    __slots__ = ("key",)

    def public_key(self) -> jose.JWKRSA:
        return jose.JWKRSA(key=self.key.public_key())

    def fields_to_partial_json(self) -> dict[str, Any]:
        return self.public_key().fields_to_partial_json()


async def public_of(key_cap: Any) -> Any:
    """The cryptography public key behind a ``PrivateKey`` capability."""
    pk = (await key_cap.publicKey()).pk
    der = bytes((await pk.der()).encoded)
    return serialization.load_der_public_key(der)


async def account_jwk(key_cap: Any) -> tuple[jose.JWK, Any]:
    """A JWK and JWS algorithm over an account key capability: ECDSA
    P-256/384/521 (ES*) or RSA of 2048 bits or more (RS256)."""
    public = await public_of(key_cap)
    loop = asyncio.get_running_loop()
    key = CapabilityKey(key_cap, public, loop)
    if isinstance(public, ec.EllipticCurvePublicKey) and (
        public.curve.name in _EC_ALGS
    ):
        return CapabilityJWK(key=key), _EC_ALGS[public.curve.name][0]
    if isinstance(public, rsa.RSAPublicKey) and public.key_size >= 2048:
        return CapabilityJWKRSA(key=key), jose.RS256
    raise CapabilityError(
        "policyViolation",
        "account keys must be ECDSA P-256/384/521 or RSA >= 2048 bits",
    )


def problem_of(error: messages.Error) -> dict[str, Any]:
    """The problem document of a library error, as JSON data."""
    return json.loads(error.json_dumps())  # type: ignore[no-any-return]


class AcmeAccountImpl(pki().AcmeAccount.Server):  # type: ignore[misc]
    """An account: its URL, and the key capability that controls it."""

    def __init__(self, regr: messages.RegistrationResource,
                 net: RetryingNetwork, owner: AcmeClientImpl) -> None:
        self.regr = regr
        self.net = net
        # Weak: the client keeps its accounts, and a cycle between them
        # would hold capability clients (the account key's) until the
        # cyclic collector ran, on whatever thread allocated then: a
        # worker thread of to_thread, where destroying a KJ object
        # aborts the process (seen in the tests as a fatal abort).
        self._owner = weakref.proxy(owner)

    async def info(self, _context: Any, **kwargs: Any) -> None:
        r = _context.results
        body = self.regr.body
        r.url = self.regr.uri or ""
        r.contact = list(body.contact or ())
        r.status = str(body.status or "valid")
        r.termsOfServiceAgreed = bool(body.terms_of_service_agreed)

    async def rollover(self, newKey: Any, _context: Any,
                       **kwargs: Any) -> None:
        await self._owner.rollover(self, newKey)


class AcmeClientImpl(pki().AcmeClient.Server):  # type: ignore[misc]
    """RFC 8555 client bound to one directory and one TrustStore.

    :param sleep: how waits between polls are made (``asyncio.sleep``;
        tests pass one that moves a fake clock).
    :param adapter: makes the requests transport from the TLS context
        (the TrustStore-pinned one; tests wrap it to inject faults).
    :param timeout: seconds an order may stay pending or processing.
    """

    def __init__(self, directory_url: str, anchors_der: list[bytes],
                 clock: Clock, audit: _audit.AuditSink,
                 service: str = "acme",
                 timeout: float = policy.ORDER_TIMEOUT,
                 sleep: Sleep | None = None,
                 adapter: AdapterFactory | None = None) -> None:
        self._url = directory_url
        self._ctx = context_from_anchors(anchors_der)
        self._clock = clock
        self._audit = audit
        self._service = service
        self._timeout = timeout
        self._sleep: Sleep = sleep or asyncio.sleep
        self._adapter: AdapterFactory = adapter or TrustStoreAdapter
        self._accounts: list[AcmeAccountImpl] = []
        #: leaf SHA-256 fingerprint -> the account that ordered it.
        self._issued: dict[str, AcmeAccountImpl] = {}
        self._directory: messages.Directory | None = None

    # -- plumbing ------------------------------------------------------

    def _net(self, key: Any, alg: Any) -> RetryingNetwork:
        net = RetryingNetwork(key, alg=alg, user_agent=USER_AGENT)
        adapter = self._adapter(self._ctx)
        net.session.mount("https://", adapter)
        net.session.mount("http://", adapter)
        return net

    def _emit(self, operation: str, outcome: str, subject: tuple[str, ...],
              reason: str = "", detail: str = "") -> None:
        self._audit.emit(_audit.AuditEvent(
            at=self._clock.now(), service=self._service,
            capability="acmeClient", operation=operation, outcome=outcome,
            reason=reason, subject=subject, detail=detail,
        ))

    async def _call(self, net: RetryingNetwork, fn: Any,
                    *args: Any) -> Any:
        """Run one library call in a thread; map its failures to
        :mod:`services.acme.errors`."""
        return _unwrap(await asyncio.to_thread(_guarded, fn, *args),
                       lambda err: self._map_error(net, err))

    def _map_error(self, net: RetryingNetwork,
                   err: Exception) -> CapabilityError | None:
        if isinstance(err, CapabilityError):
            return err
        if isinstance(err, messages.Error):
            return self._map_problem(net, err)
        if isinstance(err, requests.RequestException | OSError):
            return AcmeUnavailable(f"ACME server {self._url}: {err}")
        if isinstance(err, errors.Error):
            return AcmeError(_describe(err))
        return None

    def _map_problem(self, net: RetryingNetwork,
                     err: messages.Error) -> AcmeError:
        problem = problem_of(err)
        text = f"{err.code or err.typ}: {err.detail or err.title or ''}"
        if err.code == "badNonce":
            return AcmeBadNonce(
                f"{text} (after {BAD_NONCE_RETRIES} retries)", problem)
        if err.code == "rateLimited":
            resp = net.last_response
            header = (resp.headers.get("Retry-After")
                      if resp is not None else None)
            return AcmeRateLimited(
                text, problem,
                policy.parse_retry_after(header, self._clock.now()),
            )
        return AcmeError(text, problem)

    async def _directory_of(self, net: RetryingNetwork) -> messages.Directory:
        if self._directory is None:
            self._directory = await self._call(
                net, client.ClientV2.get_directory, self._url, net)
        return self._directory

    async def _acme(self, local: AcmeAccountImpl) -> client.ClientV2:
        return client.ClientV2(await self._directory_of(local.net),
                               local.net)

    # -- methods -------------------------------------------------------

    async def directory(self, _context: Any, **kwargs: Any) -> None:
        net = self._net(None, jose.ES256)
        d = await self._call(net, client.ClientV2.get_directory,
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

    async def renewal_window(self, der: bytes
                             ) -> policy.RenewalWindow | None:
        """The server's suggested renewal window for a certificate (RFC
        9773 section 4.2), or ``None`` when its directory offers no
        ``renewalInfo`` (pebble 2.4 does not). Asked over the latest
        account's connection when there is one: in QEMU the guestfwd to
        the ACME server carries one connection well, and a second one
        opened beside it was seen to garble TLS (``UNEXPECTED_MESSAGE``)."""
        net = (self._accounts[-1].net if self._accounts
               else self._net(None, jose.ES256))
        directory = await self._directory_of(net)
        try:
            base = directory["renewalInfo"]
        except KeyError:
            return None
        url = f"{str(base).rstrip('/')}/{ari_cert_id(der)}"
        resp = await self._call(net, net.get, url)
        info = messages.RenewalInfo.from_json(resp.json())
        window = info.suggested_window
        return policy.RenewalWindow(window.start, window.end)

    async def renewalInfo(self, chain: Any, _context: Any,
                          **kwargs: Any) -> None:
        """:meth:`renewal_window` over the capability boundary."""
        leaf = (await chain.leaf()).cert
        window = await self.renewal_window(bytes((await leaf.der()).encoded))
        r = _context.results
        r.offered = window is not None
        if window is not None:
            r.startEpochSeconds = epoch_seconds(window.start)
            r.endEpochSeconds = epoch_seconds(window.end)

    async def register(self, accountKey: Any, contact: Any, _context: Any,
                       **kwargs: Any) -> Any:
        jwk, alg = await account_jwk(accountKey)
        net = self._net(jwk, alg)
        directory = await self._directory_of(net)
        acme = client.ClientV2(directory, net)
        reg = messages.NewRegistration.from_data(
            email=",".join(c.removeprefix("mailto:") for c in contact)
            or None,
            terms_of_service_agreed=True,
        )
        try:
            try:
                regr, existing = await self._call(
                    net, _new_or_existing, acme, reg)
            except AcmeBadNonce:
                # Rejected before it was processed: nothing was created.
                regr, existing = await self._call(
                    net, _new_or_existing, acme, reg)
        except AcmeError as err:
            self._emit("register", "error", (), err.reason, err.detail)
            raise
        account = AcmeAccountImpl(regr, net, self)
        self._accounts.append(account)
        self._emit("register", "ok", (regr.uri or "",),
                   detail="existing account" if existing else "new account")
        return account

    async def rollover(self, local: AcmeAccountImpl, new_key: Any) -> None:
        """Key rollover (section 7.3.5; field report 18). The inner JWS
        is signed by the new key with ``{alg, jwk, url}`` and no nonce or
        kid; the outer one by the current key with the account's kid. The
        network switches to the new key only after a 200."""
        url = local.regr.uri or ""
        new_jwk, new_alg = await account_jwk(new_key)
        directory = await self._directory_of(local.net)
        change_url = directory["keyChange"]
        payload = json.dumps({
            "account": url,
            "oldKey": json.loads(_key_of(local.net).public_key()
                                 .json_dumps()),
        }).encode()
        inner = _unwrap(await asyncio.to_thread(
            _guarded, jws.JWS.sign, payload, new_jwk, new_alg, None,
            change_url), lambda err: self._map_error(local.net, err))
        _unwrap(await asyncio.to_thread(
            _guarded, _post_key_change, local.net, change_url, inner,
            directory["newNonce"]),
            lambda err: self._rollover_failure(local, err))
        local.net.key = new_jwk
        local.net.alg = new_alg
        self._emit("rollover", "ok", (url, _thumbprint(new_jwk)),
                   detail=f"new key {new_alg.name}")

    def _rollover_failure(self, local: AcmeAccountImpl,
                          err: Exception) -> CapabilityError | None:
        failure = self._map_error(local.net, err)
        if failure is None:
            return None
        if isinstance(err, errors.ConflictError):
            failure = AcmeKeyInUse(
                "the new key already controls the account "
                f"{getattr(err, 'location', '')}; "
                "the old key stays in use")
        outcome = "refused" if isinstance(failure, AcmeKeyInUse) else "error"
        self._emit("rollover", outcome, (local.regr.uri or "",),
                   failure.reason, failure.detail)
        return failure

    async def order(self, account: Any, identifiers: Any, certKey: Any,
                    solver: Any, _context: Any, **kwargs: Any) -> Any:
        local = await self._local_account(account)
        names = [(str(i.type), str(i.value)) for i in identifiers]
        return await self._order_audited("order", local, names, certKey,
                                         solver)

    async def _order_audited(self, operation: str, local: AcmeAccountImpl,
                             names: list[tuple[str, str]], cert_key: Any,
                             solver: Any) -> Any:
        subject = tuple(f"{t}:{v}" for t, v in names)
        started = self._clock.monotonic()
        try:
            try:
                chain = await self._issue(local, names, cert_key, solver)
            except AcmeBadNonce:
                # Four rejected nonces in a row on one request: begin the
                # order once more (a new order is harmless, and the
                # authorizations already valid are reused).
                chain = await self._issue(local, names, cert_key, solver)
        except CapabilityError as err:
            self._emit(operation, "error", subject, err.reason, err.detail)
            raise
        leaf = x509.load_der_x509_certificate(chain[0])
        fp = leaf.fingerprint(hashes.SHA256()).hex()
        self._issued[fp] = local
        self._emit(
            operation, "ok", (*subject, fp),
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

    async def _issue(self, local: AcmeAccountImpl,
                     names: list[tuple[str, str]], cert_key: Any,
                     solver: Any) -> list[bytes]:
        acme = await self._acme(local)
        net = local.net
        csr_der = bytes((await cert_key.certificationRequest(
            names=[{"type": t, "value": v} for t, v in names])).der)
        csr_pem = x509.load_der_x509_csr(csr_der).public_bytes(
            serialization.Encoding.PEM
        )
        supported = [str(t) for t in (await _remote(solver.supports())).types]
        orderr = await self._call(net, acme.new_order, csr_pem)
        published: list[dict[str, Any]] = []
        try:
            answers = []
            # Every challenge goes to the solver before any is answered:
            # a refusal stops the order before the server validates.
            for authzr in orderr.authorizations:
                if authzr.body.status == messages.STATUS_VALID:
                    continue
                challb = _pick(authzr, supported)
                chall = _challenge_of(authzr, challb, _key_of(net))
                ok = (await _remote(solver.solve(challenge=chall))).ok
                if not ok:
                    raise CapabilityError(
                        "policyViolation",
                        f"solver refused {chall['identifier']['value']}",
                    )
                published.append(chall)
                answers.append((authzr, challb))
            for _, challb in answers:
                await self._call(net, acme.answer_challenge, challb,
                                 challb.chall.response(net.key))
            started = self._clock.monotonic()
            for authzr, _ in answers:
                await self._wait_authorization(acme, authzr, started)
            pem = await self._finalize(acme, orderr, started)
        finally:
            for chall in published:
                try:
                    await _remote(solver.cleanup(challenge=chall))
                except CapabilityError as err:
                    log.warning("solver cleanup failed: %s", err)
        return _split_pem(pem)

    async def _wait(self, attempt: int, resp: requests.Response | None,
                    started: float, what: str) -> None:
        header = resp.headers.get("Retry-After") if resp is not None else None
        wait = policy.poll_wait(
            attempt, policy.parse_retry_after(header, self._clock.now()),
            self._clock.monotonic() - started, self._timeout,
        )
        if wait is None:
            raise AcmeOrderTimeout(
                f"{what} still not done after {self._timeout:.0f} s")
        await self._sleep(wait)

    async def _wait_authorization(self, acme: client.ClientV2,
                                  authzr: messages.AuthorizationResource,
                                  started: float) -> None:
        name = authzr.body.identifier.value
        attempt = 0
        resp: requests.Response | None = None
        while True:
            await self._wait(attempt, resp, started,
                             f"authorization for {name}")
            attempt += 1
            authzr, resp = await self._call(_net_of(acme), acme.poll,
                                            authzr)
            status = authzr.body.status
            if status == messages.STATUS_VALID:
                return
            if status not in (messages.STATUS_PENDING,
                              messages.STATUS_PROCESSING):
                problem = next((problem_of(c.error)
                                for c in authzr.body.challenges
                                if c.error is not None), None)
                raise AcmeOrderInvalid(
                    f"authorization for {name} is {status.name}", problem)

    async def _finalize(self, acme: client.ClientV2,
                        orderr: messages.OrderResource,
                        started: float) -> str:
        """Finalize, then poll the order until it is valid; the chain."""
        net = _net_of(acme)
        orderr = await self._call(net, acme.begin_finalization, orderr)
        resp = net.last_response
        body = orderr.body
        attempt = 0
        while True:
            if body.status == messages.STATUS_VALID and body.certificate:
                cert = await self._call(net, acme._post_as_get,
                                        body.certificate)
                return str(cert.text)
            if body.status == messages.STATUS_INVALID:
                raise AcmeOrderInvalid(
                    f"order {orderr.uri} is invalid",
                    problem_of(body.error) if body.error else None)
            if body.status == messages.STATUS_READY:
                orderr = await self._call(net, acme.begin_finalization,
                                          orderr)
                resp, body = net.last_response, orderr.body
                continue
            await self._wait(attempt, resp, started, f"order {orderr.uri}")
            attempt += 1
            resp = await self._call(net, acme._post_as_get, orderr.uri)
            body = messages.Order.from_json(resp.json())

    async def renew(self, chain: Any, certKey: Any, solver: Any,
                    _context: Any, **kwargs: Any) -> Any:
        leaf = (await chain.leaf()).cert
        der = bytes((await leaf.der()).encoded)
        cert = x509.load_der_x509_certificate(der)
        local = self._account_for(cert)
        names = _names_of(cert)
        return await self._order_audited("renew", local, names, certKey,
                                         solver)

    def _account_for(self, cert: x509.Certificate) -> AcmeAccountImpl:
        fp = cert.fingerprint(hashes.SHA256()).hex()
        local = self._issued.get(fp)
        if local is not None:
            return local
        if len(self._accounts) == 1:
            return self._accounts[0]
        raise CapabilityError(
            "policyViolation",
            f"certificate {fp[:16]} was not ordered through this client",
        )

    async def revoke(self, cert: Any, reason: Any, _context: Any,
                     **kwargs: Any) -> None:
        der = bytes((await cert.der()).encoded)
        parsed = x509.load_der_x509_certificate(der)
        fp = parsed.fingerprint(hashes.SHA256()).hex()
        code = _reason_code(reason)
        try:
            local = self._account_for(parsed)
            acme = await self._acme(local)
            await self._call(local.net, acme.revoke, parsed, code)
        except CapabilityError as err:
            self._emit("revoke", "error", (fp,), err.reason, err.detail)
            raise
        self._issued.pop(fp, None)
        self._emit("revoke", "ok", (fp,), detail=f"reason {code}")


@dataclasses.dataclass(frozen=True)
class _Failed:
    error: Exception


def _new_or_existing(acme: client.ClientV2,
                     reg: messages.NewRegistration,
                     ) -> tuple[messages.RegistrationResource, bool]:
    """``newAccount``; when the key already controls an account the
    server answers 200 with its URL (RFC 8555 section 7.3.1), which the
    library raises as a conflict. Only that answer means "existing
    account" (the library raises the same for any 409): the account is
    then looked up with the key (``newAccount`` with
    ``onlyReturnExisting``, which is what the library's
    ``query_registration`` sends) and used. Returns the account and
    whether it already existed."""
    try:
        return acme.new_account(reg), False
    except errors.ConflictError as err:
        answer = getattr(acme.net, "last_response", None)
        if answer is None or answer.status_code != 200:
            # A real 409: report the server's problem document, which
            # the library's conflict error does not carry.
            problem = _problem_in(answer)
            if problem is None:
                raise
            raise problem from err
        known = messages.RegistrationResource(
            body=messages.Registration(), uri=err.location)
        return acme.query_registration(known), True


def _problem_in(resp: requests.Response | None) -> messages.Error | None:
    """The RFC 7807 problem document a response carries, if any."""
    if resp is None:
        return None
    try:
        return messages.Error.from_json(resp.json())
    except (ValueError, jose.DeserializationError):
        return None


def _guarded(fn: Any, *args: Any) -> Any:
    """Runs on the worker thread. A failure is returned, not raised: an
    exception raised through the loop's frames would reference the
    capabilities in them, and the worker thread could then drop the last
    reference; KJ aborts when a capability dies off its loop's thread."""
    try:
        return fn(*args)
    except Exception as err:
        return _Failed(err)


def _unwrap(result: Any,
            mapper: Callable[[Exception], CapabilityError | None]) -> Any:
    """The result of :func:`_guarded`, or a fresh mapped error raised
    (the worker's exception is only its cause, never re-raised)."""
    if not isinstance(result, _Failed):
        return result
    mapped = mapper(result.error)
    if mapped is None:
        mapped = CapabilityError(
            "internal", f"{type(result.error).__name__}: "
            f"{_describe(result.error)}")
    try:
        raise mapped from result.error
    finally:
        del mapped, result


def ari_cert_id(der: bytes) -> str:
    """The RFC 9773 section 4.1 certificate identifier: base64url of the
    authority key identifier, ".", base64url of the serial's DER
    integer bytes."""
    cert = x509.load_der_x509_certificate(der)
    try:
        aki = cert.extensions.get_extension_for_class(
            x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound as err:
        raise CapabilityError(
            "policyViolation",
            "certificate has no authority key identifier") from err
    if aki is None:
        raise CapabilityError("policyViolation",
                              "authority key identifier has no keyIdentifier")
    serial = cert.serial_number
    raw = serial.to_bytes((serial.bit_length() + 8) // 8, "big", signed=True)
    return f"{jose.b64encode(aki).decode()}.{jose.b64encode(raw).decode()}"


def _reason_code(reason: Any) -> int:
    """The RFC 5280 CRLReason code of a schema ``RevocationReason``."""
    return int(pki().RevocationReason.schema.enumerants[str(reason)])


def _key_of(net: client.ClientNetwork) -> jose.JWK:
    """The account key a network signs with (always set here)."""
    if net.key is None:
        raise ValueError("ACME network without an account key")
    return net.key


def _net_of(acme: client.ClientV2) -> RetryingNetwork:
    net = acme.net
    assert isinstance(net, RetryingNetwork)
    return net


def _post_key_change(net: RetryingNetwork, url: str, inner: jws.JWS,
                     new_nonce_url: str) -> requests.Response:
    response: requests.Response = net.post(url, inner,
                                           new_nonce_url=new_nonce_url)
    return response


def _thumbprint(jwk: jose.JWK) -> str:
    return jose.b64encode(jwk.thumbprint()).decode()


async def _remote(promise: Any) -> Any:
    """Await a call on a capability the caller handed in; its refusal
    becomes a CapabilityError with the remote reason."""
    try:
        return await promise
    except capnp.KjException as err:
        reason, detail = parse_remote(err)
        raise CapabilityError(reason, detail) from err


def _pick(authzr: messages.AuthorizationResource,
          supported: list[str]) -> messages.ChallengeBody:
    offered = {challb.chall.typ: challb
               for challb in authzr.body.challenges
               if isinstance(challb.chall,
                             challenges.KeyAuthorizationChallenge)}
    for typ, kind in CHALLENGE_TYPES.items():
        if typ in offered and kind in supported:
            return offered[typ]
    raise CapabilityError(
        "policyViolation",
        f"no challenge the solver supports ({sorted(supported)}) among "
        f"{', '.join(sorted(offered))} for {authzr.body.identifier.value}",
    )


def _challenge_of(authzr: messages.AuthorizationResource,
                  challb: messages.ChallengeBody,
                  key: jose.JWK) -> dict[str, Any]:
    """The schema ``AcmeChallenge`` for one challenge: the solver gets
    the key authorization (section 8.1) and derives what it publishes."""
    return {
        "type": CHALLENGE_TYPES[challb.chall.typ],
        "token": challb.chall.encode("token"),
        "url": challb.uri,
        "identifier": {
            "type": authzr.body.identifier.typ.name,
            "value": authzr.body.identifier.value,
        },
        "keyAuthorization": challb.chall.key_authorization(key),
    }


def _names_of(cert: x509.Certificate) -> list[tuple[str, str]]:
    try:
        san = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as err:
        raise CapabilityError("policyViolation",
                              "certificate has no subjectAltName") from err
    names = [("dns", str(n)) for n in san.get_values_for_type(x509.DNSName)]
    names += [("ip", str(a))
              for a in san.get_values_for_type(x509.IPAddress)]
    return names


def _split_pem(pem: str) -> list[bytes]:
    certs = x509.load_pem_x509_certificates(pem.encode())
    return [c.public_bytes(serialization.Encoding.DER) for c in certs]


def _describe(err: BaseException) -> str:
    text = str(err).replace("\n", " ")
    return text[:300]
