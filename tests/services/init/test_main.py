"""capos-init as a process: a bad manifest starts nothing and says why."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bootmanifest import build, sign
from services.init import __main__ as init_main
from tests.services.init import runner

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("manifest")
    key = sign.load_or_create_key(d / "signing.key")
    anchor = build.ExtraAnchor("acme-server-root", _root_der())
    inputs = build.read_inputs(extra_anchors=(anchor,))
    now = int(time.time())

    def make(name: str, version: int, issued: int, expires: int) -> Path:
        raw = build.assemble(inputs, build.BuildParams(
            version=version, issued_at=issued, expires_at=expires,
            signers=(sign.key_id(key.public_key()),)))
        path = d / name
        path.write_bytes(sign.sign(raw, [key]))
        return path

    good = make("good.bin", 5, now - 60, now + 86400)
    tampered = d / "tampered.bin"
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    pub = d / "pub.hex"
    pub.write_text(sign.raw_public(key.public_key()).hex())
    return {
        "good": good, "tampered": tampered, "pub": pub,
        "expired": make("expired.bin", 5, now - 7200, now - 3600),
        "dir": d,
    }


def _root_der() -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from tests.bootmanifest.conftest import _test_root_pem

    return x509.load_pem_x509_certificate(_test_root_pem()).public_bytes(
        Encoding.DER)


def run_init(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.init", *args],
        cwd=REPO, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.mark.parametrize(
    ("which", "reason"),
    [("tampered", "badSignature"), ("expired", "expired")],
)
def test_bad_manifest_starts_nothing(signed, which, reason) -> None:
    proc = run_init("--manifest", str(signed[which]),
                    "--pubkey", str(signed["pub"]))
    assert proc.returncode == init_main.EXIT_MANIFEST
    assert f"CAPOS-FATAL {reason}:" in proc.stdout
    assert "CAPOS-STAGE" not in proc.stdout
    assert "CAPOS-READY" not in proc.stdout


def test_downgrade_refused(signed, tmp_path) -> None:
    (tmp_path / "installed-version").write_text("9\n")
    proc = run_init("--manifest", str(signed["good"]), "--pubkey",
                    str(signed["pub"]), "--state", str(tmp_path))
    assert proc.returncode == init_main.EXIT_MANIFEST
    assert "CAPOS-FATAL rollback:" in proc.stdout


def test_wrong_key_refused(signed, tmp_path) -> None:
    other = sign.load_or_create_key(tmp_path / "other.key")
    pub = tmp_path / "other.hex"
    pub.write_text(sign.raw_public(other.public_key()).hex())
    proc = run_init("--manifest", str(signed["good"]), "--pubkey", str(pub))
    assert proc.returncode == init_main.EXIT_MANIFEST
    assert "CAPOS-FATAL unknownSigner:" in proc.stdout


def test_good_manifest_boots_and_records_version(signed, tmp_path) -> None:
    """The good manifest verifies and every service comes up; SIGTERM
    stops them all. The installed version is recorded for rollback."""
    lines = runner.until_ready(
        "--manifest", str(signed["good"]), "--pubkey", str(signed["pub"]),
        "--state", str(tmp_path), "--setting",
        "acmeDirectory=https://127.0.0.1:1/dir",
        env={"CAPOS_LISTEN_MAP": "80=0,443=0,8080=0,8443=0"})
    ready = [x for x in lines if x.startswith("CAPOS-READY")]
    assert ready, "\n".join(lines)
    from bootmanifest import graph

    order = graph.validate(graph.parse(build.SERVICES_FILE.read_bytes()),
                           anchor_names=["acme-server-root"])
    assert ready[0].split()[1] == "services=" + ",".join(
        s.name for s in order)
    assert len(order) == 9
    assert (tmp_path / "installed-version").read_text().strip() == "5"


def test_a_setting_no_service_reads_is_named_not_fatal(signed) -> None:
    # The boot goes on to its manifest check (here refused, so nothing
    # starts); the console names the key and the known ones.
    proc = run_init("--manifest", str(signed["tampered"]),
                    "--pubkey", str(signed["pub"]),
                    "--setting", "tlsname=www.capos.test",
                    "--setting", "tlsName=www.capos.test")
    assert "capos-init: setting 'tlsname' is read by no service" in (
        proc.stderr)
    assert "'tlsName'" not in proc.stderr
    assert "known: acmeContact, acmeDirectory," in proc.stderr
    assert "CAPOS-FATAL badSignature:" in proc.stdout
