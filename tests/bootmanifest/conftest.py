"""Shared fixtures: parsed inputs (once per session) and throwaway keys."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)

from bootmanifest import build, sign

ISSUED = 1_790_000_000  # 2026-09-21
NOW = dt.datetime.fromtimestamp(ISSUED + 3600, dt.UTC)


def _test_root_pem() -> bytes:
    """A throwaway self-signed root standing in for the ACME server's."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test root")])
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                       critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM)


@pytest.fixture(scope="session")
def acme_root_pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("anchors") / "acme-server-root.pem"
    path.write_bytes(_test_root_pem())
    return path


@pytest.fixture(scope="session")
def inputs(acme_root_pem: Path) -> build.BuildInputs:
    extra = build.extra_anchor_from_pem(
        "acme-server-root", acme_root_pem.read_bytes())
    return build.read_inputs(extra_anchors=(extra,))


@pytest.fixture
def key(tmp_path: Path) -> Ed25519PrivateKey:
    return sign.load_or_create_key(tmp_path / "keys" / "signing.key")


def make_signed(
    inputs: build.BuildInputs,
    keys: list[Ed25519PrivateKey],
    version: int = 7,
    threshold: int = 1,
) -> bytes:
    params = build.BuildParams(
        version=version,
        issued_at=ISSUED,
        expires_at=ISSUED + 30 * 86400,
        threshold=threshold,
        signers=tuple(sign.key_id(k.public_key()) for k in keys),
    )
    return sign.sign(build.assemble(inputs, params), keys)
