"""CertificateAuthority over two-party RPC: issue, narrow (every
dimension), revoke, listIssued, persistence across a restart, and the
profile of what it issues (AIA, CDP, must-staple, field report 8f)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID

from services._runtime.audit import MemoryAuditSink
from services._runtime.boundary import parse_remote
from services._runtime.clock import FakeClock
from services._runtime.schema import pki
from services.ca.authority_impl import CertificateAuthorityImpl
from services.ca.model import IssuancePolicy
from tests.services.ca import helpers as h
from tests.services.x509.rpc import run, serve

REPO = Path(__file__).resolve().parents[3]


def authority(path: Path, audit: MemoryAuditSink,
              issuance: IssuancePolicy | None = None) -> Any:
    clock = FakeClock(h.T0)
    return CertificateAuthorityImpl(
        h.open_ca(path, clock), issuance or IssuancePolicy(),
        audit=audit, clock=clock)


def narrowing(*, permitted: tuple[str, ...] = (),
              excluded: tuple[str, ...] = (), lifetime: int = 0,
              keys: tuple[str, ...] = (), must_staple: bool = False) -> Any:
    msg = pki().IssuancePolicy.new_message()
    subs = msg.init("nameSubtrees")
    for field, names in (("permitted", permitted), ("excluded", excluded)):
        out = subs.init(field, len(names))
        for i, n in enumerate(names):
            out[i].init("base").dnsName = n
    msg.maxLifetimeSeconds = lifetime
    ks = msg.init("keyTypes", len(keys))
    for i, k in enumerate(keys):
        ks[i] = k
    msg.mustStaple = must_staple
    return msg


async def leaf_of(chain: Any) -> x509.Certificate:
    cert = (await chain.leaf()).cert
    return x509.load_der_x509_certificate(bytes((await cert.der()).encoded))


async def refusal(call: Any) -> tuple[str, str]:
    with pytest.raises(Exception) as info:
        await call
    return parse_remote(info.value)


def test_issue_profile(tmp_path: Path) -> None:
    audit = MemoryAuditSink()

    async def main() -> tuple[x509.Certificate, int]:
        async with serve(authority(tmp_path, audit),
                         pki().CertificateAuthority) as ca:
            chain = (await ca.issue(h.request(
                ["www.example.com"], lifetime=86400 * 7))).chain
            certs = (await chain.certificates()).chain
            return await leaf_of(chain), len(certs)

    leaf, length = run(main)
    assert length == 2
    aia = leaf.extensions.get_extension_for_class(
        x509.AuthorityInformationAccess).value
    assert [(d.access_method, d.access_location.value) for d in aia] == [
        (AuthorityInformationAccessOID.OCSP, h.OCSP_URL)]
    cdp = leaf.extensions.get_extension_for_class(
        x509.CRLDistributionPoints).value
    assert cdp[0].full_name[0].value == h.CRL_URL
    # Field report 8f: notBefore backdated by the skew (300 s).
    assert leaf.not_valid_before_utc == h.T0 - dt.timedelta(seconds=300)
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc
            == dt.timedelta(days=7))
    with pytest.raises(x509.ExtensionNotFound):
        leaf.extensions.get_extension_for_class(x509.TLSFeature)
    assert leaf.serial_number > 0
    ok = [e for e in audit.events if e.operation == "issue"]
    assert ok[0].outcome == "ok"
    assert f"serial={leaf.serial_number:x}" in ok[0].subject


def test_generalized_time_from_2050(tmp_path: Path) -> None:
    """Field report 8f: a notAfter in 2050 or later is GeneralizedTime."""
    clock = FakeClock(dt.datetime(2049, 12, 1, tzinfo=dt.UTC))
    ca = h.open_ca(tmp_path, clock)
    leaf = h.issue_direct(ca, ["late.example.com"], lifetime=86400 * 60)
    der = leaf.public_bytes(Encoding.DER)
    # Tag 0x18 is GeneralizedTime, 0x17 UTCTime (X.680).
    assert b"\x18\x0f2050" in der
    assert b"\x17\x0d491130235500Z" in der
    # The root outlives 2050 as well, so it is GeneralizedTime too.
    assert ca.cert.not_valid_after_utc.year >= 2059


@pytest.mark.parametrize(("asked", "dimension"), [
    (dict(permitted=("example.net",)), "nameSubtrees"),
    (dict(permitted=("secret.example.com",)), "nameSubtrees"),
    (dict(lifetime=86400 * 31), "maxLifetimeSeconds"),
    (dict(keys=("rsa2048",)), "keyTypes"),
    (dict(must_staple=False), "mustStaple"),
], ids=["subtree-outside", "subtree-excluded", "lifetime", "key-type",
        "drop-must-staple"])
def test_narrow_refuses_widening(tmp_path: Path, asked: dict[str, Any],
                                 dimension: str) -> None:
    audit = MemoryAuditSink()
    base = IssuancePolicy(
        permitted=(x509.DNSName("example.com"),),
        excluded=(x509.DNSName("secret.example.com"),),
        max_lifetime_seconds=86400 * 30, key_types=("ecdsaP256",),
        must_staple=True)
    kwargs = dict(must_staple=True) | asked

    async def main() -> tuple[str, str]:
        async with serve(authority(tmp_path, audit, base),
                         pki().CertificateAuthority) as ca:
            return await refusal(ca.narrow(narrowing(**kwargs)))

    reason, detail = run(main)
    assert reason == "policyViolation"
    assert detail.startswith(f"{dimension}:")
    assert audit.events[-1].operation == "narrow"
    assert audit.events[-1].outcome == "refused"


@pytest.mark.parametrize(("names", "kwargs", "reason", "dimension"), [
    (["www.example.net"], {}, "nameConstraintViolation", "nameSubtrees"),
    (["db.internal.example.com"], {}, "nameConstraintViolation",
     "nameSubtrees"),
    (["*.internal.example.com"], {}, "nameConstraintViolation",
     "nameSubtrees"),
    (["www.example.com"], dict(lifetime=86400 * 8), "policyViolation",
     "maxLifetimeSeconds"),
    (["www.example.com"], dict(key="rsa"), "weakAlgorithm", "keyTypes"),
    (["www.example.com"], dict(purposes=("ocspSigning",)),
     "policyViolation", "purposes"),
], ids=["name-outside", "name-excluded", "wildcard-over-excluded",
        "lifetime", "key-type", "ocsp-signing-purpose"])
def test_narrowed_holder_asking_for_more(
        tmp_path: Path, names: list[str], kwargs: dict[str, Any],
        reason: str, dimension: str) -> None:
    audit = MemoryAuditSink()
    if kwargs.get("key") == "rsa":
        kwargs = dict(kwargs, key=rsa.generate_private_key(65537, 2048))

    async def main() -> tuple[tuple[str, str], x509.Certificate]:
        async with serve(authority(tmp_path, audit),
                         pki().CertificateAuthority) as root:
            narrow = (await root.narrow(narrowing(
                permitted=("example.com",),
                excluded=("internal.example.com",),
                lifetime=86400 * 7, keys=("ecdsaP256",),
                must_staple=True))).ca
            refused = await refusal(narrow.issue(h.request(names, **kwargs)))
            # Within its policy the same holder is served, must-staple on.
            chain = (await narrow.issue(h.request(["a.example.com"]))).chain
            return refused, await leaf_of(chain)

    (got_reason, detail), ok = run(main)
    assert (got_reason, detail.split(":")[0]) == (reason, dimension)
    feature = ok.extensions.get_extension_for_class(x509.TLSFeature).value
    assert x509.TLSFeatureType.status_request in feature
    assert isinstance(ok.public_key(), ec.EllipticCurvePublicKey)
    refusals = [e for e in audit.events if e.outcome == "refused"]
    assert refusals[-1].operation == "issue"
    assert refusals[-1].reason == reason


def test_narrowed_policy_is_reported_and_root_unchanged(
        tmp_path: Path) -> None:
    audit = MemoryAuditSink()

    async def main() -> tuple[Any, Any]:
        async with serve(authority(tmp_path, audit),
                         pki().CertificateAuthority) as root:
            narrow = (await root.narrow(narrowing(
                permitted=("example.com",), lifetime=3600))).ca
            small = (await narrow.policy()).policy
            big = (await root.policy()).policy
            return (
                ([s.base.dnsName for s in small.nameSubtrees.permitted],
                 small.maxLifetimeSeconds, list(small.keyTypes)),
                (len(big.nameSubtrees.permitted), big.maxLifetimeSeconds))

    small, big = run(main)
    assert small[0] == ["example.com"]
    assert small[1] == 3600
    assert "ecdsaP256" in small[2]
    assert big == (0, IssuancePolicy().max_lifetime_seconds)


def test_revoke_scope_and_list(tmp_path: Path) -> None:
    audit = MemoryAuditSink()

    async def main() -> tuple[list[Any], tuple[str, str]]:
        async with serve(authority(tmp_path, audit),
                         pki().CertificateAuthority) as root:
            net = (await root.issue(h.request(["www.example.net"]))).chain
            com = (await root.issue(h.request(["www.example.com"]))).chain
            narrow = (await root.narrow(narrowing(
                permitted=("example.com",)))).ca
            net_serial = bytes((await (await net.leaf()).cert.serial()).bytes)
            com_serial = bytes((await (await com.leaf()).cert.serial()).bytes)
            refused = await refusal(narrow.revoke(net_serial,
                                                  "keyCompromise"))
            bad_reason = await refusal(root.revoke(net_serial,
                                                   "removeFromCrl"))
            assert bad_reason[0] == "policyViolation"
            await narrow.revoke(com_serial, "superseded")
            records = (await root.listIssued()).records
            mine = (await narrow.listIssued()).records
            assert [bytes(r.serial) for r in mine] == [com_serial]
            return [(bytes(r.serial), r.revoked, str(r.revocationReason),
                     r.revokedAt) for r in records], refused

    records, refused = run(main)
    assert refused[0] == "policyViolation"
    assert refused[1].startswith("nameSubtrees:")
    assert [r[1:] for r in records] == [
        (False, "unspecified", 0),
        (True, "superseded", int(h.T0.timestamp()))]


def test_narrow_to_an_ip_subtree(tmp_path: Path) -> None:
    audit = MemoryAuditSink()

    async def main() -> tuple[list[bytes], tuple[str, str], str]:
        async with serve(authority(tmp_path, audit),
                         pki().CertificateAuthority) as root:
            msg = pki().IssuancePolicy.new_message()
            subs = msg.init("nameSubtrees").init("permitted", 1)
            # RFC 5280 4.2.1.10: address then mask, 8 octets for IPv4.
            subs[0].init("base").ipAddress = bytes([192, 0, 2, 0,
                                                   255, 255, 255, 0])
            narrow = (await root.narrow(msg)).ca
            got = (await narrow.policy()).policy
            bases = [bytes(s.base.ipAddress)
                     for s in got.nameSubtrees.permitted]
            refused = await refusal(narrow.issue(h.request(["192.0.3.1"])))
            chain = (await narrow.issue(h.request(["192.0.2.9"]))).chain
            leaf = await leaf_of(chain)
            san = leaf.extensions.get_extension_for_class(
                x509.SubjectAlternativeName).value
            return bases, refused, str(san[0].value)

    bases, refused, issued = run(main)
    assert bases == [bytes([192, 0, 2, 0, 255, 255, 255, 0])]
    assert refused[0] == "nameConstraintViolation"
    assert issued == "192.0.2.9"


def test_restart_keeps_records_and_revocations(tmp_path: Path) -> None:
    ca = h.open_ca(tmp_path)
    one = h.issue_direct(ca, ["one.example.com"])
    two = h.issue_direct(ca, ["two.example.com"])
    assert ca.revoke(two.serial_number, "keyCompromise")
    root_der = ca.cert_der
    ca.close()
    again = h.open_ca(tmp_path)
    assert again.cert_der == root_der
    got = [(r.serial, r.is_revoked, r.reason) for r in again.store.records()]
    assert got == [(one.serial_number, False, "unspecified"),
                   (two.serial_number, True, "keyCompromise")]
    # A second revocation keeps the first time and reason.
    assert not again.revoke(two.serial_number, "superseded")
    again.close()
    # A new process opens the same directory and sees the same state.
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from tests.services.ca import helpers as h\n"
        "ca = h.open_ca(Path(sys.argv[1]))\n"
        "print(json.dumps([[r.serial, r.revoked_at.isoformat() if"
        " r.revoked_at else None, r.reason] for r in ca.store.records()]"
        " + [ca.cert_der.hex()]))\n")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True,
                         check=True)
    listed = json.loads(out.stdout)
    assert listed[-1] == root_der.hex()
    assert listed[:-1] == [
        [one.serial_number, None, "unspecified"],
        [two.serial_number, h.T0.isoformat(), "keyCompromise"]]
    assert (tmp_path / "ca.key.pem").stat().st_mode & 0o777 == 0o600


def test_bad_csr_refused(tmp_path: Path) -> None:
    audit = MemoryAuditSink()

    async def main() -> tuple[str, str]:
        async with serve(authority(tmp_path, audit),
                         pki().CertificateAuthority) as ca:
            msg = h.request(["www.example.com"])
            msg.csr = b"\x30\x03\x02\x01\x00"
            return await refusal(ca.issue(msg))

    reason, detail = run(main)
    assert reason == "policyViolation"
    assert detail.startswith("csr:")
    assert audit.events[-1].outcome == "refused"


def test_delegated_responder_renewed_at_half_life(tmp_path: Path) -> None:
    clock = FakeClock(h.T0)
    ca = h.open_ca(tmp_path, clock)
    first = ca.responder()
    eku = first.cert.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING in eku
    first.cert.extensions.get_extension_for_class(x509.OCSPNoCheck)
    first.cert.verify_directly_issued_by(ca.cert)
    clock.advance(14 * 86400)
    assert ca.responder().cert == first.cert
    ca.close()
    # Persisted: a restart signs with the same delegate.
    again = h.open_ca(tmp_path, clock)
    assert again.responder().cert == first.cert
    clock.advance(86400 + 301)      # past half of 30 days (+ backdating)
    renewed = again.responder()
    assert renewed.cert != first.cert
    assert renewed.cert.not_valid_before_utc == clock.now() - (
        dt.timedelta(seconds=300))


@pytest.mark.parametrize("raw", [
    bytes([192, 0, 2, 0, 255, 0, 255, 0]),      # mask not contiguous
    bytes([192, 0, 2, 1, 255, 255, 255, 0]),    # host bits set
    bytes([192, 0, 2]),                         # neither 4/16 nor 8/32
], ids=["mask", "host-bits", "length"])
def test_malformed_ip_subtree_refused(tmp_path: Path, raw: bytes) -> None:
    audit = MemoryAuditSink()

    async def main() -> tuple[str, str]:
        async with serve(authority(tmp_path, audit),
                         pki().CertificateAuthority) as root:
            msg = pki().IssuancePolicy.new_message()
            subs = msg.init("nameSubtrees").init("permitted", 1)
            subs[0].init("base").ipAddress = raw
            return await refusal(root.narrow(msg))

    reason, detail = run(main)
    assert reason == "policyViolation"
    assert detail.startswith("nameSubtrees:")
    assert audit.events[-1].outcome == "refused"
