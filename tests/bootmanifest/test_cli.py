"""``python -m bootmanifest`` end to end (in-process and one subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from bootmanifest import cli, sign


@pytest.fixture
def built(tmp_path, monkeypatch, acme_root_pem):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1790000000")
    key = tmp_path / "k.key"
    sign.load_or_create_key(key)  # build refuses a --key that is missing
    out = tmp_path / "out" / "manifest.bin"
    out.parent.mkdir()  # build refuses a missing --out directory
    assert cli.main(["build", "--out", str(out), "--key", str(key),
                     "--version", "42", "--valid-days", "36500",
                     "--extra-anchor",
                     f"acme-server-root={acme_root_pem}"]) == 0
    pub = tmp_path / "pub.hex"
    return out, key, pub, acme_root_pem


def test_inspect_json_counts(built, capsys) -> None:
    out, _, _, _ = built
    capsys.readouterr()
    assert cli.main(["inspect", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["version"] == 42
    assert info["issuedAt"] == 1790000000
    assert info["rootBundle"]["anchors"] == 172
    assert info["rootBundle"]["tlsAnchors"] == 121
    assert info["ctLogList"]["logs"] == 56
    assert info["ctLogList"]["version"] == "85.92"
    assert len(info["signatures"]) == 1
    assert info["services"][0]["name"] == "audit"


def test_reproducible(built, tmp_path) -> None:
    out, key, _, root = built
    again = tmp_path / "again.bin"
    assert cli.main(["build", "--out", str(again), "--key", str(key),
                     "--version", "42", "--valid-days", "36500",
                     "--extra-anchor", f"acme-server-root={root}"]) == 0
    assert again.read_bytes() == out.read_bytes()


@pytest.mark.parametrize("pem", [False, True], ids=["hex", "pem"])
def test_verify_exit_codes(built, capsys, pem) -> None:
    out, key, pub, _ = built
    capsys.readouterr()
    assert cli.main(["pubkey", "--key", str(key)] + (["--pem"] if pem
                                                     else [])) == 0
    pub.write_text(capsys.readouterr().out)
    assert cli.main(["verify", str(out), "--pubkey", str(pub)]) == 0
    assert cli.main(["verify", str(out), "--pubkey", str(pub),
                     "--installed-version", "43", "--json"]) == 1
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {
        "valid": False, "reason": "rollback",
        "detail": "version 42 below installed 43"}


def test_verify_wrong_key_and_tamper(built, tmp_path, capsys) -> None:
    out, _, pub, _ = built
    other = tmp_path / "other.key"
    other.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    cli.main(["pubkey", "--key", str(other)])
    pub.write_text(capsys.readouterr().out)
    assert cli.main(["verify", str(out), "--pubkey", str(pub)]) == 1
    assert "unknownSigner" in capsys.readouterr().out


def test_usage_errors(built, tmp_path) -> None:
    out, _, pub, _ = built
    assert cli.main(["verify", str(out)]) == 2  # --pubkey missing
    assert cli.main(["verify", str(tmp_path / "none"), "--pubkey",
                     str(tmp_path / "none")]) == 2
    pub.write_text("not a key")
    assert cli.main(["verify", str(out), "--pubkey", str(pub)]) == 2
    assert cli.main(["build", "--extra-anchor", "noequals"]) == 2
    assert cli.main([]) == 2


def test_extra_anchor(tmp_path, capsys, acme_root_pem) -> None:
    # Any PEM certificate will do as a second extra anchor.
    pem = acme_root_pem
    out = tmp_path / "m.bin"
    sign.load_or_create_key(tmp_path / "k")
    assert cli.main(["build", "--out", str(out), "--key",
                     str(tmp_path / "k"), "--extra-anchor",
                     f"acme-test-root={pem}", "--extra-anchor",
                     f"acme-server-root={acme_root_pem}", "--ct-mode",
                     "report-only"]) == 0
    capsys.readouterr()
    cli.main(["inspect", str(out), "--json"])
    info = json.loads(capsys.readouterr().out)
    assert sorted(info["extraAnchors"]) == [
        "acme-server-root", "acme-test-root"]
    assert info["ctEnforcement"] == "reportOnly"


def test_module_help_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bootmanifest", "verify", "--help"],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0
    assert "exit codes" in done.stdout


def test_pubkey_reads_a_key_and_never_makes_one(tmp_path, capsys) -> None:
    """A mistyped --key is a usage error, with no key left behind (only
    ``build`` makes the key, on first use)."""
    typo = tmp_path / "no" / "such.key"
    assert cli.main(["pubkey", "--key", str(typo)]) == 2
    assert "no such key" in capsys.readouterr().err
    assert not typo.exists() and not typo.parent.exists()


def test_inspect_names_signers_by_the_key_id_pubkey_prints(
        built, capsys) -> None:
    out, key, _, _ = built
    capsys.readouterr()
    assert cli.main(["pubkey", "--key", str(key), "--key-id"]) == 0
    key_id = capsys.readouterr().out.strip()
    assert len(key_id) == 64
    assert cli.main(["inspect", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"signed by    key id {key_id}" in lines
    assert f"threshold    1 of key id {key_id}" in lines
    assert cli.main(["inspect", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["signatures"] == [key_id]
