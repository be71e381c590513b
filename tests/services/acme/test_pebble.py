"""AcmeClient against Debian's pebble on 127.0.0.1, nonce rejection on:
directory, register, order, renew, revoke, key rollover (field report
18a and c), and 5 issuances under 20% nonce rejection (16d)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import capnp
import josepy as jose
from acme import client, messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from services._runtime.audit import MemoryAuditSink
from services._runtime.boundary import parse_remote
from services._runtime.clock import SystemClock
from services.gateway.solver_impl import ChallengeTable, Http01SolverImpl
from services.keys.private_key_impl import PrivateKeyImpl
from tests.services.acme.harness import (
    client_for,
    ders_of,
    http01_port,
    leaf_of,
    served,
)
from tests.services.x509.rpc import run
from tools.pebble import Pebble


def ops(audit: MemoryAuditSink) -> list[tuple[str, str, str]]:
    return [(e.operation, e.outcome, e.reason) for e in audit.events]


def sans(cert: x509.Certificate) -> list[str]:
    return cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


async def _order(acme: Any, account: Any, name: str, table: Any) -> Any:
    """An order for ``name`` with a fresh P-256 key, solved by http-01
    from ``table``; the chain capability."""
    return (await acme.order(
        account=account, identifiers=[{"type": "dns", "value": name}],
        certKey=PrivateKeyImpl(ec.generate_private_key(ec.SECP256R1())),
        solver=Http01SolverImpl(table))).chain


def test_directory_register_order_renew_revoke(pebble: Pebble) -> None:
    audit = MemoryAuditSink()
    table = ChallengeTable()
    impl = client_for(pebble, audit, SystemClock())

    async def go() -> dict[str, Any]:
        async with served(impl) as acme, http01_port(pebble, table):
            d = await acme.directory()
            account = (await acme.register(
                accountKey=PrivateKeyImpl(ec.generate_private_key(
                    ec.SECP256R1())),
                contact=["mailto:admin@capos.test"])).account
            info = await account.info()
            cert_key = PrivateKeyImpl(ec.generate_private_key(
                ec.SECP256R1()))
            solver = Http01SolverImpl(table)
            first = (await acme.order(
                account=account,
                identifiers=[{"type": "dns", "value": "a.capos.test"}],
                certKey=cert_key, solver=solver)).chain
            renewed = (await acme.renew(chain=first, certKey=cert_key,
                                        solver=solver)).chain
            leaf = (await renewed.leaf()).cert
            await acme.revoke(cert=leaf, reason="superseded")
            try:
                await acme.revoke(cert=leaf, reason="superseded")
                again = ("", "")
            except capnp.KjException as err:
                again = parse_remote(err)
            return {"url": d.url, "info": info.url, "status": info.status,
                    "first": await ders_of(first),
                    "renewed": await ders_of(renewed), "again": again}

    got = run(go)
    assert got["url"] == pebble.local_directory_url
    assert got["status"] == "valid" and "/my-account/" in got["info"]
    first, renewed = leaf_of(got["first"]), leaf_of(got["renewed"])
    assert sans(first) == sans(renewed) == ["a.capos.test"]
    assert first.serial_number != renewed.serial_number
    reason, detail = got["again"]
    assert reason == "acmeError" and "alreadyRevoked" in detail
    fp = renewed.fingerprint(hashes.SHA256()).hex()
    assert ops(audit)[:4] == [("register", "ok", ""), ("order", "ok", ""),
                              ("renew", "ok", ""), ("revoke", "ok", "")]
    assert audit.events[2].subject[-1] == fp
    assert audit.events[3].subject == (fp,)
    assert audit.events[3].detail == "reason 4"
    assert ops(audit)[4] == ("revoke", "error", "acmeError")


def _raw_order(peb: Pebble, key: Any, alg: Any, account_url: str) -> Any:
    """newOrder signed with ``key`` for ``account_url``, straight through
    the acme library (the old key is no capability the client keeps)."""
    net = client.ClientNetwork(jose.JWKEC(key=key) if alg is jose.ES256
                               else jose.JWKRSA(key=key), alg=alg,
                               verify_ssl=str(peb.root_pem))
    directory = client.ClientV2.get_directory(peb.local_directory_url, net)
    net.account = messages.RegistrationResource(
        body=messages.Registration(), uri=account_url)
    acme = client.ClientV2(directory, net)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([]))
           .add_extension(x509.SubjectAlternativeName(
               [x509.DNSName("old.capos.test")]), False)
           .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()))
    for _ in range(4):
        try:
            return acme.new_order(csr.public_bytes(
                serialization.Encoding.PEM))
        except messages.Error as err:
            if err.code != "badNonce":
                return err
    raise AssertionError("badNonce four times")


def test_rollover_p256_to_rsa2048(pebble: Pebble) -> None:
    """Field report 18a: K1 (P-256) -> K2 (RSA-2048); then K2 orders and
    K1 is refused."""
    audit = MemoryAuditSink()
    table = ChallengeTable()
    impl = client_for(pebble, audit, SystemClock())
    k1 = ec.generate_private_key(ec.SECP256R1())
    k2 = rsa.generate_private_key(65537, 2048)

    async def go() -> tuple[str, list[bytes]]:
        async with served(impl) as acme, http01_port(pebble, table):
            account = (await acme.register(
                accountKey=PrivateKeyImpl(k1), contact=[])).account
            await account.rollover(newKey=PrivateKeyImpl(k2))
            chain = await _order(acme, account, "k2.capos.test", table)
            return (await account.info()).url, await ders_of(chain)

    url, ders = run(go)
    assert sans(leaf_of(ders)) == ["k2.capos.test"]
    with_k2 = _raw_order(pebble, k2, jose.RS256, url)
    assert isinstance(with_k2, messages.OrderResource)
    with_k1 = _raw_order(pebble, k1, jose.ES256, url)
    assert isinstance(with_k1, messages.Error)
    # Pebble checks the JWS against the account's key, now RSA-2048.
    assert with_k1.code == "malformed"
    assert "signature type 'ES256'" in (with_k1.detail or "")
    assert ("rollover", "ok", "") in ops(audit)
    rolled = next(e for e in audit.events if e.operation == "rollover")
    assert rolled.subject[0] == url and rolled.detail == "new key RS256"


def test_rollover_to_a_key_in_use_keeps_the_old_key(pebble: Pebble) -> None:
    """Field report 18c against pebble: the refusal is surfaced with the
    server's problem document and K1 still signs. Pebble 2.4 answers a
    500 ``serverInternal`` here rather than RFC 8555's 409; the 409 path
    (``acmeKeyInUse``) is tested against a scripted server in
    test_faults.py."""
    audit = MemoryAuditSink()
    table = ChallengeTable()
    impl = client_for(pebble, audit, SystemClock())
    taken = PrivateKeyImpl(ec.generate_private_key(ec.SECP256R1()))

    async def go() -> tuple[tuple[str, str], list[bytes]]:
        async with served(impl) as acme, http01_port(pebble, table):
            account = (await acme.register(
                accountKey=PrivateKeyImpl(ec.generate_private_key(
                    ec.SECP256R1())), contact=[])).account
            await acme.register(accountKey=taken, contact=[])
            try:
                await account.rollover(newKey=taken)
                refused = ("", "")
            except capnp.KjException as err:
                refused = parse_remote(err)
            chain = await _order(acme, account, "k1.capos.test", table)
            return refused, await ders_of(chain)

    (reason, detail), ders = run(go)
    assert reason == "acmeError"
    assert "already in use" in detail and '"type":"urn:ietf' in detail
    assert sans(leaf_of(ders)) == ["k1.capos.test"]
    assert ("rollover", "error", "acmeError") in ops(audit)


def test_registering_a_key_again_returns_its_account(pebble: Pebble,
                                                    ) -> None:
    """RFC 8555 7.3.1, as a rebooted gateway does with its kept account
    key: a second ``register`` with the same key (a fresh client, as a
    new boot has) gets the same account back, not a new one, and can
    order with it."""
    audit = MemoryAuditSink()
    table = ChallengeTable()
    key = ec.generate_private_key(ec.SECP256R1())

    async def go() -> tuple[str, str, list[bytes]]:
        async with served(client_for(pebble, audit, SystemClock())) as a:
            first = (await (await a.register(
                accountKey=PrivateKeyImpl(key), contact=[])).account
                .info()).url
        async with served(client_for(pebble, audit, SystemClock())) as b, \
                http01_port(pebble, table):
            account = (await b.register(accountKey=PrivateKeyImpl(key),
                                        contact=[])).account
            again = (await account.info()).url
            chain = await _order(b, account, "again.capos.test", table)
            return str(first), str(again), await ders_of(chain)

    first, again, ders = run(go)
    assert first.startswith("https://") and again == first
    assert sans(leaf_of(ders)) == ["again.capos.test"]
    registers = [(e.outcome, e.subject, e.detail) for e in audit.events
                 if e.operation == "register"]
    assert registers == [("ok", (first,), "new account"),
                         ("ok", (first,), "existing account")]


def test_five_issuances_under_20_percent_nonce_rejection(
        tmp_path: Path) -> None:
    """Field report 16d."""
    audit = MemoryAuditSink()
    table = ChallengeTable()
    with Pebble(tmp_path / "logs", nonce_reject=20) as peb:
        impl = client_for(peb, audit, SystemClock())

        async def go() -> list[list[str]]:
            async with served(impl) as acme, http01_port(peb, table):
                account = (await acme.register(
                    accountKey=PrivateKeyImpl(ec.generate_private_key(
                        ec.SECP256R1())), contact=[])).account
                out = []
                for i in range(5):
                    chain = await _order(acme, account,
                                         f"n{i}.capos.test", table)
                    out.append(sans(leaf_of(await ders_of(chain))))
                return out

        got = run(go)
    assert got == [[f"n{i}.capos.test"] for i in range(5)]
    assert [o for o in ops(audit) if o[0] == "order"] == [
        ("order", "ok", "")] * 5
