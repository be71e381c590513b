"""Build, sign and verify: the round trip and every refusal reason."""

from __future__ import annotations

import datetime as dt
import os
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)

from bootmanifest import build, sign
from bootmanifest.errors import ManifestError
from tests.bootmanifest.conftest import ISSUED, NOW, make_signed


def reason_of(signed: bytes, keys, *, threshold=1, installed=0, now=NOW):
    with pytest.raises(ManifestError) as info:
        sign.verify(signed, keys, threshold, installed, now)
    return info.value.reason


def test_round_trip(inputs, key) -> None:
    signed = make_signed(inputs, [key])
    m = sign.verify(signed, [key.public_key()], 1, 0, NOW)
    assert m.version == 7
    assert m.issuedAt == ISSUED
    assert len(m.rootBundle.anchors) == 172
    assert sum(a.trustServerAuth for a in m.rootBundle.anchors) == 121
    assert m.rootBundle.nssVersion == "2.90"
    assert m.ctLogList.version == "85.92"
    assert len(m.ctLogList.logs) == 56
    assert str(m.ctEnforcement) == "enforce"
    assert m.services[0].name == "audit"
    assert list(m.signers) == [sign.key_id(key.public_key())]
    izenpe = next(a for a in m.rootBundle.anchors if a.label == "Izenpe.com")
    assert izenpe.serverDistrustAfter == 1776297599


def test_build_is_deterministic(inputs) -> None:
    params = build.BuildParams(version=1, issued_at=1, expires_at=2)
    assert build.assemble(inputs, params) == build.assemble(inputs, params)


def test_same_version_is_accepted(inputs, key) -> None:
    signed = make_signed(inputs, [key], version=7)
    assert sign.verify(signed, [key.public_key()], 1, 7, NOW).version == 7


def test_tampered_manifest_byte(inputs, key) -> None:
    signed = bytearray(make_signed(inputs, [key]))
    # Well inside the manifest Data (the CT log list region).
    signed[len(signed) // 2] ^= 0x01
    assert reason_of(bytes(signed), [key.public_key()]) == "badSignature"


def test_wrong_key(inputs, key) -> None:
    other = Ed25519PrivateKey.generate()
    signed = make_signed(inputs, [key])
    assert reason_of(signed, [other.public_key()]) == "unknownSigner"


def test_below_threshold(inputs, key) -> None:
    second = Ed25519PrivateKey.generate()
    signed = make_signed(inputs, [key])
    keys = [key.public_key(), second.public_key()]
    assert reason_of(signed, keys, threshold=2) == "belowThreshold"
    both = make_signed(inputs, [key, second], threshold=2)
    assert sign.verify(both, keys, 2, 0, NOW).threshold == 2


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (30 * 86400 - 3600, "expired"),  # exactly expiresAt
        (-3600 - 301, "notYetValid"),  # issuedAt beyond the skew
    ],
    ids=["expired-at-boundary", "issued-in-future"],
)
def test_time_window(inputs, key, offset, expected) -> None:
    signed = make_signed(inputs, [key])
    now = NOW + dt.timedelta(seconds=offset)
    assert reason_of(signed, [key.public_key()], now=now) == expected


def test_within_skew_and_just_before_expiry(inputs, key) -> None:
    signed = make_signed(inputs, [key])
    pub = [key.public_key()]
    early = sign.verify(signed, pub, 1, 0,
                        NOW - dt.timedelta(seconds=3600 + 300))
    late = sign.verify(signed, pub, 1, 0,
                       NOW + dt.timedelta(seconds=30 * 86400 - 3601))
    assert early.version == late.version > 0
    assert len(late.rootBundle.anchors) == 172


def test_rollback(inputs, key) -> None:
    signed = make_signed(inputs, [key], version=7)
    assert reason_of(signed, [key.public_key()], installed=8) == "rollback"


def test_malformed(key) -> None:
    assert reason_of(b"\x00" * 64, [key.public_key()]) == "malformed"


def test_non_deterministic_encoding_is_malformed(inputs, key) -> None:
    params = build.BuildParams(version=1, issued_at=1, expires_at=2**40)
    manifest = build.assemble(inputs, params) + b"\x00" * 8
    signed = sign.sign(manifest, [key])
    assert reason_of(signed, [key.public_key()]) == "malformed"


def test_key_created_private(tmp_path) -> None:
    path = tmp_path / "a" / "k.key"
    first = sign.load_or_create_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = sign.load_or_create_key(path)
    assert sign.key_id(first.public_key()) == sign.key_id(again.public_key())


def test_refuses_key_inside_repo() -> None:
    with pytest.raises(ValueError, match="inside the repo"):
        sign.load_or_create_key(sign.REPO_ROOT / "build" / "never.key")
