"""Damaged manifest files: ``inspect`` (which verifies nothing) reads
bytes no signature vouches for, and every single-byte damage is either
still a manifest or refused as ``malformed``, never an aborted process
or a traceback (capnp's C++ aborts on some out-of-bounds pointers)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)

from bootmanifest import build, cli, sign
from bootmanifest.errors import ManifestError, Reason
from tests.bootmanifest.conftest import make_signed
from tests.bootmanifest.test_cli_errors import bootmanifest


def damaged(signed: bytes, at: int, mask: int) -> bytes:
    out = bytearray(signed)
    out[at] ^= mask
    return bytes(out)


@pytest.fixture(scope="module")
def signed(inputs: build.BuildInputs) -> bytes:
    return make_signed(inputs, [Ed25519PrivateKey.generate()])


def test_every_byte_of_the_head_damaged_is_a_manifest_or_malformed(
        signed: bytes) -> None:
    # The first 256 bytes hold the envelope's and the manifest's
    # pointers, where a flipped bit points out of bounds; this process
    # would abort on one that got through.
    outcomes: dict[str, int] = {}
    for at in range(256):
        try:
            cli.summary(damaged(signed, at, 0x40))
        except ManifestError as err:
            assert err.reason == Reason.MALFORMED, err
            outcomes[err.detail.split(" (")[0]] = outcomes.get(
                err.detail.split(" (")[0], 0) + 1
        else:
            outcomes["read"] = outcomes.get("read", 0) + 1
    assert outcomes.get("read", 0) > 0
    assert sum(n for k, n in outcomes.items() if k != "read") > 0


def aborting(signed: bytes) -> bytes:
    """A damage that aborts capnp's walk of the manifest."""
    for at in range(256):
        variant = damaged(signed, at, 0x40)
        try:
            manifest, _ = sign.read_envelope(variant)
            sign.check_untrusted(manifest)
        except ManifestError as err:
            if "capnp aborted" in err.detail:
                return variant
    pytest.fail("no single-byte damage aborts capnp's walk")


def test_inspect_names_a_pointer_out_of_bounds(signed: bytes,
                                               tmp_path: Path) -> None:
    path = tmp_path / "damaged.bin"
    path.write_bytes(aborting(signed))
    proc = bootmanifest("inspect", path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "terminate called" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "malformed: not a BootManifest (a pointer out of bounds" in last


def test_an_unnamed_enumerant_is_shown_by_number(signed: bytes) -> None:
    manifest, _ = sign.read_envelope(signed)
    reader = sign.read_manifest(manifest)
    assert cli._enumerant(reader.ctEnforcement) == str(reader.ctEnforcement)

    class Unnamed:
        raw = 64

        def __str__(self) -> str:
            raise RuntimeError("Member was null.")

    assert cli._enumerant(Unnamed()) == "unknown(64)"
    assert hashlib.sha256(manifest).hexdigest() == cli.summary(
        signed)["manifestSha256"]
