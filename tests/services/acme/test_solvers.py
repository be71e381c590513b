"""ChallengeSolvers, each scoped to one thing: http-01 (one path prefix),
dns-01 (one ``_acme-challenge`` name, through challtestsrv's management
API), tls-alpn-01 (one ALPN slot, answered by a pyOpenSSL responder on
127.0.0.1 where pebble's tlsPort points). Each is validated by pebble;
each refuses outside its scope; the client has no authority beyond the
solver it is handed."""

from __future__ import annotations

import socket
from typing import Any, ClassVar

import capnp
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from services._runtime.audit import MemoryAuditSink
from services._runtime.boundary import parse_remote
from services._runtime.clock import SystemClock
from services._runtime.schema import pki
from services.acme.dns01_impl import (
    ChallTestSrvTxtRecord,
    Dns01SolverImpl,
    challenge_name,
    txt_value,
)
from services.acme.transport import TrustStoreAdapter
from services.gateway.alpn import AlpnResponder
from services.gateway.solver_impl import (
    ACME_IDENTIFIER,
    AlpnSlot,
    ChallengeTable,
    Http01SolverImpl,
    TlsAlpn01SolverImpl,
)
from services.keys.private_key_impl import PrivateKeyImpl
from tests.services.acme.harness import client_for, ders_of, leaf_of, served
from tests.services.x509.rpc import run, serve
from tools.pebble import Pebble

TOKEN = "T" * 43


class Recording(TrustStoreAdapter):
    """The real transport, logging every request's method and path."""

    seen: ClassVar[list[tuple[str, str]]] = []

    def send(self, request: requests.PreparedRequest,
             *args: Any, **kwargs: Any) -> requests.Response:
        self.seen.append((str(request.method), str(request.path_url)))
        return super().send(request, *args, **kwargs)


def dns_record(peb: Pebble, name: str) -> ChallTestSrvTxtRecord:
    return ChallTestSrvTxtRecord(f"http://127.0.0.1:{peb.ports.challtest}",
                                 challenge_name(name))


async def issue(peb: Pebble, audit: MemoryAuditSink, name: str,
                solver: Any, adapter: Any = None) -> Any:
    impl = client_for(peb, audit, SystemClock(),
                      **({"adapter": adapter} if adapter else {}))
    async with served(impl) as acme:
        account = (await acme.register(
            accountKey=PrivateKeyImpl(ec.generate_private_key(
                ec.SECP256R1())), contact=[])).account
        try:
            chain = (await acme.order(
                account=account,
                identifiers=[{"type": "dns", "value": name}],
                certKey=PrivateKeyImpl(ec.generate_private_key(
                    ec.SECP256R1())),
                solver=solver)).chain
            return await ders_of(chain)
        except capnp.KjException as err:
            return parse_remote(err)


def sans(ders: list[bytes]) -> list[str]:
    return leaf_of(ders).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


class Watched:
    """A TxtRecord that records what passes through it to the real one."""

    def __init__(self, inner: ChallTestSrvTxtRecord) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[tuple[str, str]] = []

    def set_txt(self, value: str) -> None:
        self.calls.append(("set", value))
        self.inner.set_txt(value)

    def clear_txt(self) -> None:
        self.calls.append(("clear", ""))
        self.inner.clear_txt()


def test_dns01_through_challtestsrv(pebble: Pebble) -> None:
    audit = MemoryAuditSink()
    record = Watched(dns_record(pebble, "d.capos.test"))
    solver = Dns01SolverImpl(record)
    got = run(lambda: issue(pebble, audit, "d.capos.test", solver))
    assert isinstance(got, list), got
    assert sans(got) == ["d.capos.test"]
    assert [(e.operation, e.outcome) for e in audit.events] == [
        ("register", "ok"), ("order", "ok")]
    assert record.name == "_acme-challenge.d.capos.test."
    (kind, value), cleared = record.calls
    assert kind == "set" and len(value) == 43 and "=" not in value
    assert cleared == ("clear", "")


def test_tls_alpn01_through_the_slot_responder(pebble: Pebble) -> None:
    audit = MemoryAuditSink()
    slot = AlpnSlot("t.capos.test", SystemClock())
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", pebble.ports.tlsalpn01))
    sock.listen(8)
    responder = AlpnResponder(slot, sock)
    responder.start()
    try:
        got = run(lambda: issue(pebble, audit, "t.capos.test",
                                TlsAlpn01SolverImpl(slot)))
    finally:
        responder.stop()
    assert isinstance(got, list), got
    assert sans(got) == ["t.capos.test"]
    assert responder.answered >= 1
    assert slot.lookup("t.capos.test") is None  # withdrawn at cleanup
    assert audit.events[-1].operation == "order"
    assert audit.events[-1].outcome == "ok"


def test_order_outside_every_solver_scope_fails_before_validation(
        pebble: Pebble) -> None:
    """The client holds no authority beyond its solver: an order for a
    name the solver does not cover stops before any challenge is
    answered (no POST to pebble's challenge URLs)."""
    audit = MemoryAuditSink()
    Recording.seen = []
    solver = Dns01SolverImpl(dns_record(pebble, "a.capos.test"))
    reason, detail = run(lambda: issue(pebble, audit, "b.capos.test",
                                       solver, adapter=Recording))
    assert reason == "policyViolation"
    assert detail == ("outside scope: _acme-challenge.b.capos.test. is not "
                      "_acme-challenge.a.capos.test.")
    posts = [p for m, p in Recording.seen if m == "POST"]
    assert any(p.startswith("/order-plz") for p in posts)
    assert not [p for p in posts if p.startswith("/chalZ/")]
    event = audit.events[-1]
    assert (event.operation, event.outcome, event.reason) == (
        "order", "error", "policyViolation")


def solve_remote(solver: Any, challenge: dict[str, Any]) -> tuple[str, str]:
    async def go() -> tuple[str, str]:
        async with serve(solver, pki().ChallengeSolver) as cap:
            try:
                await cap.solve(challenge=challenge)
            except capnp.KjException as err:
                return parse_remote(err)
        return ("", "")

    return run(go)


def chall(kind: str, name: str, token: str = TOKEN) -> dict[str, Any]:
    return {"type": kind, "token": token, "url": "https://acme.test/c/1",
            "identifier": {"type": "dns", "value": name},
            "keyAuthorization": f"{token}.thumb"}


class Record:
    name = "_acme-challenge.a.capos.test."

    def __init__(self) -> None:
        self.values: list[str] = []

    def set_txt(self, value: str) -> None:
        self.values.append(value)

    def clear_txt(self) -> None:
        self.values.clear()


@pytest.mark.parametrize(("challenge", "detail"), [
    (chall("dns01", "b.capos.test"),
     "outside scope: _acme-challenge.b.capos.test. is not "
     "_acme-challenge.a.capos.test."),
    (chall("dns01", "sub.a.capos.test"),
     "outside scope: _acme-challenge.sub.a.capos.test. is not "
     "_acme-challenge.a.capos.test."),
    (chall("http01", "a.capos.test"),
     "this solver publishes dns-01 only, not http01"),
    (chall("dns01", "a.capos.test", token="../../etc/passwd-xxxxxxxx"),
     "key authorization does not belong to the token"),
])
def test_dns01_solver_refuses_outside_its_name(
        challenge: dict[str, Any], detail: str) -> None:
    record = Record()
    assert solve_remote(Dns01SolverImpl(record), challenge) == (
        "policyViolation", detail)
    assert record.values == []


def test_dns01_solver_publishes_the_digest_in_scope() -> None:
    record = Record()
    assert solve_remote(Dns01SolverImpl(record),
                        chall("dns01", "*.a.capos.test")) == ("", "")
    assert record.values == [txt_value(f"{TOKEN}.thumb")]


@pytest.mark.parametrize(("challenge", "detail"), [
    (chall("tlsAlpn01", "b.capos.test"),
     "outside scope: b.capos.test is not a.capos.test"),
    (chall("dns01", "a.capos.test"),
     "this solver publishes tls-alpn-01 only, not dns01"),
])
def test_alpn_solver_refuses_outside_its_slot(
        challenge: dict[str, Any], detail: str) -> None:
    slot = AlpnSlot("a.capos.test", SystemClock())
    assert solve_remote(TlsAlpn01SolverImpl(slot), challenge) == (
        "policyViolation", detail)
    assert slot.lookup("a.capos.test") is None
    assert slot.lookup("b.capos.test") is None


def test_alpn_slot_certificate_in_scope() -> None:
    slot = AlpnSlot("a.capos.test", SystemClock())
    assert solve_remote(TlsAlpn01SolverImpl(slot),
                        chall("tlsAlpn01", "A.capos.test")) == ("", "")
    found = slot.lookup("a.capos.test")
    assert found is not None and slot.lookup("b.capos.test") is None
    ext = found[1].extensions.get_extension_for_oid(ACME_IDENTIFIER)
    assert ext.critical
    assert found[1].extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName) == ["a.capos.test"]


@pytest.mark.parametrize(("challenge", "detail"), [
    (chall("http01", "a.capos.test", token="../../../etc/passwd-xxxx"),
     "token is not a base64url string"),
    (chall("dns01", "a.capos.test"),
     "this solver publishes http-01 only, not dns01"),
])
def test_http01_solver_refuses_outside_its_prefix(
        challenge: dict[str, Any], detail: str) -> None:
    table = ChallengeTable()
    assert solve_remote(Http01SolverImpl(table), challenge) == (
        "policyViolation", detail)
    assert table.lookup("/.well-known/acme-challenge/" + TOKEN) is None
