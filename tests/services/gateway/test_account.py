"""The gateway's ACME account across reboots, against pebble: its key is
kept in the state directory, a later registration with it gets the same
account back (RFC 8555 7.3.1), and a kept key whose account was
deactivated (7.3.6: its key is refused from then on) is replaced once,
with a new account, and audited."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import josepy as jose
from acme import client, messages
from cryptography.hazmat.primitives import serialization

from services._runtime.audit import MemoryAuditSink
from services._runtime.clock import SystemClock
from services.gateway import keyfile
from services.gateway.service import register_account
from tests.services.acme.harness import client_for, served
from tests.services.x509.rpc import run
from tools.pebble import Pebble

CONTACT = ["mailto:admin@capos.test"]


class Emitted:
    """The gateway's audit emitter, recorded."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, str]] = []

    def __call__(self, op: str, outcome: str, subject: tuple[str, ...],
                 reason: str = "", detail: str = "") -> None:
        self.records.append((op, reason, detail))


async def _boot(peb: Pebble, state: Path, emitted: Emitted) -> str:
    """One boot's registration, by a fresh client, as the gateway does
    it; the account's URL."""
    impl = client_for(peb, MemoryAuditSink(), SystemClock())
    async with served(impl) as acme:
        account = await register_account(acme, state, CONTACT, emitted)
        return str((await account.info()).url)


def _deactivate(peb: Pebble, state: Path, url: str) -> None:
    """What an operator (or the CA) does: deactivate the account, signed
    with the kept key, straight through the acme library."""
    key = serialization.load_pem_private_key(
        (state / keyfile.ACCOUNT_KEY_FILE).read_bytes(), None)
    net = client.ClientNetwork(jose.JWKEC(key=key), alg=jose.ES256,
                               verify_ssl=str(peb.root_pem))
    directory = client.ClientV2.get_directory(peb.local_directory_url, net)
    acme = client.ClientV2(directory, net)
    regr = acme.query_registration(messages.RegistrationResource(
        body=messages.Registration(), uri=url))
    gone: Any = acme.deactivate_registration(regr)
    assert str(gone.body.status) == "deactivated"


def test_kept_account_key_same_account_and_a_deactivated_one_replaced(
        pebble: Pebble, tmp_path: Path) -> None:
    emitted = Emitted()
    path = tmp_path / keyfile.ACCOUNT_KEY_FILE

    async def go() -> None:
        # Every boot in one event loop (each with its own client): the
        # capabilities of one loop must not outlive it.
        first = await _boot(pebble, tmp_path, emitted)
        kept = path.read_bytes()
        assert emitted.records == [("accountKey", "", "created")]
        # The next boot: the same key, the same account, no new key.
        assert await _boot(pebble, tmp_path, emitted) == first
        assert len(emitted.records) == 1
        assert path.read_bytes() == kept
        # Deactivated: the kept key is refused, replaced once, a new
        # account.
        await asyncio.to_thread(_deactivate, pebble, tmp_path, first)
        third = await _boot(pebble, tmp_path, emitted)
        assert third.startswith("https://") and third != first
        assert path.read_bytes() != kept
        op, reason, detail = emitted.records[1]
        assert (op, reason) == ("accountKey", "acmeError")
        assert detail.startswith("replaced: the kept key's account is "
                                 "gone (unauthorized:"), detail
        # And the replacement is what the boot after that keeps using.
        assert await _boot(pebble, tmp_path, emitted) == third
        assert len(emitted.records) == 2

    run(go)
