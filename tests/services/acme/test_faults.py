"""What real servers do, injected through a scripted transport and a
fake clock: field reports 16 (a-c), 17 (a-f) and 18 (b, c). No real
sleeping: every wait goes through FakeSleep."""

from __future__ import annotations

import json
from typing import Any

import capnp
import josepy as jose
from acme import jws
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from services._runtime.audit import MemoryAuditSink
from services._runtime.boundary import parse_remote
from services._runtime.clock import FakeClock
from services.acme.client_impl import AcmeClientImpl
from services.gateway.solver_impl import ChallengeTable, Http01SolverImpl
from services.keys.private_key_impl import PrivateKeyImpl
from tests.services.acme.harness import T0, FakeSleep, ders_of, served
from tests.services.acme.scripted import (
    BASE,
    DIRECTORY,
    Reply,
    ScriptedAcme,
    anchor_der,
    order_body,
    problem,
)
from tests.services.x509.rpc import run


class Rig:
    def __init__(self, timeout: float = 60.0) -> None:
        self.server = ScriptedAcme()
        self.clock = FakeClock(T0)
        self.sleep = FakeSleep(self.clock)
        self.audit = MemoryAuditSink()
        self.k1 = ec.generate_private_key(ec.SECP256R1())
        self.impl = AcmeClientImpl(
            DIRECTORY, [anchor_der()], self.clock, self.audit,
            timeout=timeout, sleep=self.sleep,
            adapter=lambda ctx: self.server)

    def order(self, before: Any = None) -> tuple[str, str] | list[bytes]:
        """Register, optionally call ``before(account)``, order; the
        chain's DER or the boundary ``(reason, detail)``."""

        async def go() -> tuple[str, str] | list[bytes]:
            async with served(self.impl) as acme:
                account = (await acme.register(
                    accountKey=PrivateKeyImpl(self.k1),
                    contact=[])).account
                try:
                    if before is not None:
                        await before(account)
                    chain = (await acme.order(
                        account=account,
                        identifiers=[{"type": "dns",
                                      "value": "x.capos.test"}],
                        certKey=PrivateKeyImpl(ec.generate_private_key(
                            ec.SECP256R1())),
                        solver=Http01SolverImpl(ChallengeTable()))).chain
                    return await ders_of(chain)
                except capnp.KjException as err:
                    return parse_remote(err)

        return run(go)


def test_16a_badnonce_retried_with_the_nonce_from_the_error() -> None:
    rig = Rig()
    rig.server.queue("/new-order", problem("badNonce", nonce="NNNN2222"))
    got = rig.order()
    assert isinstance(got, list) and len(got) == 2
    posts = rig.server.posts("/new-order")
    assert len(posts) == 2
    assert posts[1].protected["nonce"] == "NNNN2222"
    # One newNonce request in the whole run: the first POST's.
    assert rig.server.count("HEAD", "/nonce") == 1


def test_16b_badnonce_four_times_stops_at_the_retry_limit() -> None:
    rig = Rig()
    rig.server.queue("/new-order", *[problem("badNonce")] * 8)
    reason, detail = rig.order()
    assert reason == "acmeBadNonce"
    assert "after 3 retries" in detail
    # 1 + 3 retries, and the order is begun once more: never a loop.
    assert len(rig.server.posts("/new-order")) == 8
    assert rig.audit.events[-1].reason == "acmeBadNonce"


def test_16c_malformed_is_not_retried() -> None:
    rig = Rig()
    rig.server.queue("/new-order", problem("malformed", detail="bad CSR"))
    reason, detail = rig.order()
    assert reason == "acmeError"
    assert detail.startswith("malformed: bad CSR")
    assert '"type":"urn:ietf:params:acme:error:malformed"' in detail
    assert len(rig.server.posts("/new-order")) == 1


def test_17a_processing_honours_retry_after_seconds() -> None:
    rig = Rig()
    rig.server.queue("/finalize/1", Reply(200, order_body("processing"),
                                          (("Retry-After", "2"),)))
    rig.server.queue("/order/1", Reply(200, order_body("processing"),
                                       (("Retry-After", "1"),)))
    got = rig.order()
    assert isinstance(got, list) and len(got) == 2
    assert rig.sleep.waits == [2.0, 1.0]
    assert len(rig.server.posts("/order/1")) == 2
    assert len(rig.server.posts("/cert/1")) == 1
    assert rig.audit.events[-1].operation == "order"
    assert rig.audit.events[-1].outcome == "ok"


def test_17b_retry_after_http_date_future_and_past() -> None:
    rig = Rig()
    # The fake clock stands at 2026-10-21 07:00:00 UTC.
    rig.server.queue("/finalize/1", Reply(200, order_body("processing"), (
        ("Retry-After", "Wed, 21 Oct 2026 07:00:05 GMT"),)))
    rig.server.queue("/order/1", Reply(200, order_body("processing"), (
        ("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT"),)))
    got = rig.order()
    assert isinstance(got, list)
    assert rig.sleep.waits == [5.0, 0.0]


def test_17c_no_retry_after_backs_off_exponentially_and_capped() -> None:
    """One quick first look, then backoff from 1 s, capped at 16 s."""
    rig = Rig()
    rig.server.queue("/order/1", *[Reply(200, order_body("processing"))] * 6)
    got = rig.order()
    assert isinstance(got, list)
    assert rig.sleep.waits == [0.05, 1.0, 2.0, 4.0, 8.0, 16.0, 16.0]
    assert len(rig.server.posts("/order/1")) == 7


def test_17d_still_processing_after_the_timeout() -> None:
    rig = Rig(timeout=60.0)
    rig.server.queue("/order/1",
                     *[Reply(200, order_body("processing"))] * 50)
    reason, detail = rig.order()
    assert reason == "acmeOrderTimeout"
    assert "after 60 s" in detail
    assert sum(rig.sleep.waits) <= 60.0
    assert len(rig.server.posts("/order/1")) == len(rig.sleep.waits)
    assert rig.audit.events[-1].reason == "acmeOrderTimeout"


def test_17e_rate_limited_is_raised_with_retry_after_not_slept() -> None:
    rig = Rig()
    rig.server.queue("/new-order", problem(
        "rateLimited", 429, "too many new orders",
        (("Retry-After", "86400"),)))
    reason, detail = rig.order()
    assert reason == "acmeRateLimited"
    assert "retry after 86400 s" in detail
    assert '"detail":"too many new orders"' in detail
    assert rig.sleep.waits == []
    assert len(rig.server.posts("/new-order")) == 1
    event = rig.audit.events[-1]
    assert (event.operation, event.outcome, event.reason) == (
        "order", "error", "acmeRateLimited")


def test_17e_rate_limited_exception_carries_retry_after() -> None:
    """In-process, the Python error has the number itself."""
    from services.acme.errors import AcmeRateLimited

    rig = Rig()
    rig.server.queue("/new-order", problem(
        "rateLimited", 429, "slow down", (("Retry-After", "86400"),)))
    key = PrivateKeyImpl(rig.k1)

    async def go() -> Any:
        async with served(rig.impl) as acme:
            await acme.register(accountKey=key, contact=[])
            local = rig.impl._accounts[0]
            try:
                await rig.impl._issue(local, [("dns", "x.capos.test")],
                                      _LocalKey(), _LocalSolver())
            except AcmeRateLimited as err:
                return err.retry_after, err.problem
        return None

    retry_after, problem_doc = run(go)
    assert retry_after == 86400.0
    assert problem_doc["type"] == "urn:ietf:params:acme:error:rateLimited"


class _LocalKey:
    """certificationRequest as a local awaitable, for the in-process
    test above."""

    def certificationRequest(self, names: Any) -> Any:
        from services.keys.private_key_impl import certification_request

        async def go() -> Any:
            der = certification_request(
                ec.generate_private_key(ec.SECP256R1()),
                [(n["type"], n["value"]) for n in names])
            return type("R", (), {"der": der})

        return go()


class _LocalSolver:
    def supports(self) -> Any:
        async def go() -> Any:
            return type("R", (), {"types": ["http01"]})

        return go()


def test_17f_invalid_during_polling_carries_the_problem() -> None:
    rig = Rig()
    rig.server.queue("/order/1", Reply(200, order_body("invalid", error={
        "type": "urn:ietf:params:acme:error:caa",
        "detail": "CAA forbids issuance"})))
    reason, detail = rig.order()
    assert reason == "acmeOrderInvalid"
    assert '"detail":"CAA forbids issuance"' in detail
    assert "urn:ietf:params:acme:error:caa" in detail


def test_unreachable_server_is_unavailable() -> None:
    from tools.pebble import free_port

    impl = AcmeClientImpl(f"https://127.0.0.1:{free_port()}/dir",
                          [anchor_der()], FakeClock(T0),
                          MemoryAuditSink())

    async def go() -> tuple[str, str]:
        async with served(impl) as acme:
            try:
                await acme.directory()
            except capnp.KjException as err:
                return parse_remote(err)
        return ("", "")

    reason, detail = run(go)
    assert reason == "unavailable"
    assert "127.0.0.1" in detail


def _verify(body: dict[str, Any], key: Any) -> bool:
    return bool(jws.JWS.from_json(body).verify(key))


def test_18b_rollover_inner_jws_shape() -> None:
    rig = Rig()
    k2 = rsa.generate_private_key(65537, 2048)

    async def roll(account: Any) -> None:
        await account.rollover(newKey=PrivateKeyImpl(k2))

    got = rig.order(roll)
    assert isinstance(got, list)
    (change,) = rig.server.posts("/key-change")
    outer = change.protected
    assert outer["kid"] == f"{BASE}/acct/1"
    assert outer["url"] == f"{BASE}/key-change"
    assert outer["nonce"] and "jwk" not in outer
    assert _verify(change.jws, jose.JWKEC(key=rig.k1.public_key()))
    inner = change.payload
    inner_header = json.loads(jose.b64decode(inner["protected"]))
    assert set(inner_header) == {"alg", "jwk", "url"}
    assert "nonce" not in inner_header and "kid" not in inner_header
    assert inner_header["alg"] == "RS256"
    assert inner_header["url"] == outer["url"]
    assert inner_header["jwk"] == json.loads(
        jose.JWKRSA(key=k2.public_key()).json_dumps())
    assert _verify(inner, jose.JWKRSA(key=k2.public_key()))
    inner_payload = json.loads(jose.b64decode(inner["payload"]))
    assert inner_payload["account"] == f"{BASE}/acct/1"
    assert inner_payload["oldKey"] == json.loads(
        jose.JWKEC(key=rig.k1.public_key()).json_dumps())
    # After the 200 the account signs with K2.
    (new_order,) = rig.server.posts("/new-order")
    assert new_order.protected["alg"] == "RS256"
    assert _verify(new_order.jws, jose.JWKRSA(key=k2.public_key()))
    assert ("rollover", "ok") in [(e.operation, e.outcome)
                                  for e in rig.audit.events]


def test_18c_key_in_use_keeps_the_old_key() -> None:
    rig = Rig()
    rig.server.queue("/key-change", Reply(409, {
        "type": "urn:ietf:params:acme:error:malformed",
        "detail": "key in use"}, (("Location", f"{BASE}/acct/7"),)))
    k2 = rsa.generate_private_key(65537, 2048)
    refusal: list[tuple[str, str]] = []

    async def roll(account: Any) -> None:
        try:
            await account.rollover(newKey=PrivateKeyImpl(k2))
        except capnp.KjException as err:
            refusal.append(parse_remote(err))

    got = rig.order(roll)
    assert isinstance(got, list)
    assert refusal and refusal[0][0] == "acmeKeyInUse"
    assert f"{BASE}/acct/7" in refusal[0][1]
    (new_order,) = rig.server.posts("/new-order")
    assert new_order.protected["alg"] == "ES256"
    assert _verify(new_order.jws, jose.JWKEC(key=rig.k1.public_key()))
    refused = [e for e in rig.audit.events if e.operation == "rollover"]
    assert [(e.outcome, e.reason) for e in refused] == [
        ("refused", "acmeKeyInUse")]


def test_a_409_to_new_account_is_an_error_not_an_existing_account(
        ) -> None:
    """The library raises the same conflict for any 409 as for RFC 8555
    7.3.1's 200-with-Location; only the 200 is an existing account."""
    rig = Rig()
    rig.server.queue("/acct", Reply(409, {
        "type": "urn:ietf:params:acme:error:malformed",
        "detail": "scripted conflict"}, (("Location", f"{BASE}/acct/9"),)))

    async def go() -> tuple[str, str]:
        async with served(rig.impl) as acme:
            try:
                await acme.register(accountKey=PrivateKeyImpl(rig.k1),
                                    contact=[])
            except capnp.KjException as err:
                return parse_remote(err)
        return "", ""

    reason, detail = run(go)
    assert reason == "acmeError"
    assert detail.startswith("malformed: scripted conflict"), detail
    registers = [(e.outcome, e.reason) for e in rig.audit.events
                 if e.operation == "register"]
    assert registers == [("error", "acmeError")]
    assert len(rig.server.posts("/acct")) == 1  # no lookup followed


def test_an_existing_account_is_looked_up_with_its_key() -> None:
    """RFC 8555 7.3.1: 200 with the account's URL; the client looks it
    up (onlyReturnExisting, signed with the key) and orders with it."""
    rig = Rig()
    rig.server.queue("/acct", Reply(200, {"status": "valid",
                                          "contact": []},
                                    (("Location", f"{BASE}/acct/1"),)))
    got = rig.order()
    assert isinstance(got, list) and len(got) == 2
    _, lookup = rig.server.posts("/acct")
    assert lookup.payload.get("onlyReturnExisting") is True
    assert "jwk" in lookup.protected  # signed with the key, no kid yet
    registers = [(e.outcome, e.subject, e.detail) for e in rig.audit.events
                 if e.operation == "register"]
    assert registers == [("ok", (f"{BASE}/acct/1",), "existing account")]
