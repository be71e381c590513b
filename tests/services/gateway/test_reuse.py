"""The gateway's pure reuse decision, its kept TLS key, and the
certstore service reading its state directory and fault setting."""

from __future__ import annotations

import datetime as dt
import os
import random
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services._runtime.audit import MemoryAuditSink
from services._runtime.clock import FakeClock
from services._runtime.host import ServiceContext
from services._runtime.schema import pki
from services.acme.renewal import Binding, RenewalScheduler, Renewer
from services.certstore import service as certstore_service
from services.certstore.store_impl import CertificateStoreImpl
from services.gateway import keyfile
from services.gateway.policy import reuse_refusal
from services.x509.chain_impl import CertificateChainImpl
from services.x509.model import parse_certificate
from tests.services.acme.harness import T0
from tests.services.x509.rpc import run, serve

NAME = "www.capos.test"


def leaf(key: ec.EllipticCurvePrivateKey, names: list[str],
         days: float = 90) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gw")])
    cert = (x509.CertificateBuilder().subject_name(subject)
            .issuer_name(subject).public_key(key.public_key())
            .serial_number(7).not_valid_before(T0)
            .not_valid_after(T0 + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in names]), False)
            .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def test_reuse_only_for_this_key_and_name_before_expiry() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key()
    good = [leaf(key, [NAME])]
    now = T0 + dt.timedelta(days=1)
    assert reuse_refusal(good, pub, NAME, now) is None
    assert reuse_refusal(None, pub, NAME, now) == "no stored chain"
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert reuse_refusal(good, other, NAME, now) == (
        "stored chain is for another key")
    assert reuse_refusal([leaf(key, ["x.test"])], pub, NAME, now) == (
        f"stored chain does not name {NAME}")
    late = T0 + dt.timedelta(days=90)
    assert reuse_refusal(good, pub, NAME, late) == (
        "stored chain expired at 2027-01-19T07:00:00Z")
    assert reuse_refusal([b"junk"], pub, NAME, now).startswith(
        "stored leaf does not parse")


def test_tls_key_is_kept_and_a_damaged_file_replaced(tmp_path: Path) -> None:
    key, how = keyfile.load_or_create(tmp_path)
    assert how == "created"
    path = tmp_path / keyfile.KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    again, how = keyfile.load_or_create(tmp_path)
    assert how == "loaded"
    assert again.private_numbers() == key.private_numbers()
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\ntorn")
    fresh, how = keyfile.load_or_create(tmp_path)
    assert how.startswith("replaced: kept key does not load")
    assert fresh.private_numbers() != key.private_numbers()
    assert sorted(os.listdir(tmp_path)) == [keyfile.KEY_FILE]
    _, how = keyfile.load_or_create(None)
    assert how == "ephemeral"


def test_account_key_is_kept_beside_the_tls_key(tmp_path: Path) -> None:
    tls, _ = keyfile.load_or_create(tmp_path)
    account, how = keyfile.load_or_create(tmp_path,
                                          keyfile.ACCOUNT_KEY_FILE)
    assert how == "created"
    assert account.private_numbers() != tls.private_numbers()
    path = tmp_path / keyfile.ACCOUNT_KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    again, how = keyfile.load_or_create(tmp_path, keyfile.ACCOUNT_KEY_FILE)
    assert how == "loaded"
    assert again.private_numbers() == account.private_numbers()
    assert sorted(os.listdir(tmp_path)) == sorted(
        [keyfile.KEY_FILE, keyfile.ACCOUNT_KEY_FILE])


def test_adopt_at_boot_gives_a_due_certificate_its_own_slot() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    ders = [leaf(key, [NAME], days=9)]
    clock = FakeClock(T0 + dt.timedelta(days=8))
    audit = MemoryAuditSink()
    st = CertificateStoreImpl(clock, audit)

    async def go() -> dict[str, dt.datetime]:
        async with serve(st, pki().CertificateStore) as store:
            await store.put(handle="gateway", chain=CertificateChainImpl(
                [parse_certificate(d) for d in ders]))
            renewer = Renewer(None, store, RenewalScheduler(
                clock, random.Random(3)), clock, audit, service="gateway")
            times = await renewer.adopt_at_boot(
                {"gateway": Binding(None, None)})
            assert renewer.next_due() == times["gateway"]
            return times

    times = run(go)
    now = clock.now()
    # Overdue (half of 9 days is long past): not now, but in slot 0.
    assert now <= times["gateway"] < now + dt.timedelta(seconds=30)
    sched = [e for e in audit.events if e.operation == "schedule"]
    assert [(e.service, e.capability, e.subject) for e in sched] == [
        ("gateway", "renewer", ("gateway",))]
    assert sched[0].detail.endswith("(at boot)")


def ctx(inputs: dict[str, bytes], settings: dict[str, str]
        ) -> ServiceContext:
    return ServiceContext("certstore", {}, inputs, settings,
                          FakeClock(T0), MemoryAuditSink())


def test_certstore_service_keeps_records_in_its_state_dir(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    ders = [leaf(key, [NAME])]

    async def go() -> list[str]:
        exports = await certstore_service.build(ctx(
            {"stateDir": str(tmp_path).encode()},
            {"faultStoreCommitDelay": "0.01"}))
        async with serve(exports["certStore"],
                         pki().CertificateStore) as store:
            await store.put(handle="gateway", chain=CertificateChainImpl(
                [parse_certificate(d) for d in ders]))
            return list((await store.list()).handles)

    assert run(go) == ["gateway"]
    assert sorted(os.listdir(tmp_path)) == ["gateway.chain"]
    fp = x509.load_der_x509_certificate(ders[0]).fingerprint(
        hashes.SHA256()).hex()
    out = capfd.readouterr().out
    assert f"CAPOS-CERTSTORE renaming handle=gateway sha256={fp} tmp=." \
        in out


def test_certstore_without_state_dir_is_in_memory_and_setting_checked(
        ) -> None:
    exports = run(lambda: certstore_service.build(ctx({}, {})))
    assert exports["certStore"]._backend is None
    for bad, why in (("soon", "not a number"), ("-1", "outside 0..600")):
        with pytest.raises(ValueError, match=why):
            certstore_service.commit_delay({"faultStoreCommitDelay": bad})
