"""The host verification command line, run as a subprocess on real chains
(tests/vectors/chains) and on chains the test builds."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.services.x509 import pkifactory as f

REPO = Path(__file__).resolve().parent.parent.parent
CHAINS = REPO / "tests" / "vectors" / "chains"
GOOGLE = CHAINS / "google.com.pem"
IN_VALIDITY = "2026-03-01T00:00:00Z"
AT_T0 = f.T0.isoformat()


def cli(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.verify", *map(str, argv)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def test_valid_against_mozilla_json() -> None:
    proc = cli(GOOGLE, "--mozilla", "--hostname", "google.com", "--at",
               IN_VALIDITY, "--json")
    result = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stderr
    assert result["outcome"] == "valid"
    assert result["hostname"] == "google.com"
    assert result["policy"] == "webPkiLenient"
    # The verified path ends at a Mozilla root, not at what was sent.
    assert result["path"][-1] == result["anchor"]
    assert result["path"][0] == result["leaf"]


def test_readable_verdict_for_valid_chain() -> None:
    proc = cli(GOOGLE, "--mozilla", "--hostname", "google.com", "--at",
               IN_VALIDITY)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK: serial=")
    assert "anchor: serial=" in proc.stdout


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("--hostname", "example.com", "--at", IN_VALIDITY), "nameMismatch"),
        (("--hostname", "google.com", "--at", "2027-01-01T00:00:00Z"),
         "expired"),
        (("--hostname", "google.com", "--at", "@1735689600"),
         "notYetValid"),
        # Mozilla grants no root the code-signing bit: no anchor is
        # trusted for the purpose.
        (("--hostname", "google.com", "--at", IN_VALIDITY, "--purpose",
          "codeSigning"), "unknownAnchor"),
    ],
    ids=["wrong-name", "expired", "not-yet-valid", "no-code-signing-root"],
)
def test_invalid_reasons(args: tuple[str, ...], reason: str) -> None:
    proc = cli(GOOGLE, "--mozilla", *args, "--json")
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["outcome"], out["reason"]) == ("invalid", reason)
    assert out["detail"]


def test_unknown_anchor_readable(tmp_path: Path) -> None:
    other = CHAINS / "letsencrypt.org.pem"
    proc = cli(GOOGLE, "--anchor", other, "--hostname", "google.com",
               "--at", IN_VALIDITY)
    assert proc.returncode == 1
    assert proc.stdout.startswith("FAILED (unknownAnchor)")


def _write(path: Path, *certs: x509.Certificate,
           encoding: Encoding = Encoding.PEM) -> Path:
    path.write_bytes(b"".join(c.public_bytes(encoding) for c in certs))
    return path


def _ip_leaf(issuer: f.Issued, ip: str) -> x509.Certificate:
    key = f.ec_key("ip-leaf")
    return (
        x509.CertificateBuilder()
        .subject_name(f.name("ip leaf")).issuer_name(issuer.cert.subject)
        .public_key(key.public_key()).serial_number(77)
        .not_valid_before(f.T0 - f.DAY).not_valid_after(f.T0 + 30 * f.DAY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                       critical=True)
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.key.public_key()), critical=False)  # type: ignore
        .sign(issuer.key, hashes.SHA256()))  # type: ignore[arg-type]


def test_ip_address_and_der_input(tmp_path: Path) -> None:
    h = f.hierarchy("CLI")
    leaf = _ip_leaf(h.inter, "127.0.0.1")
    leaf_der = _write(tmp_path / "leaf.der", leaf, encoding=Encoding.DER)
    inter = _write(tmp_path / "inter.der", h.inter.cert,
                   encoding=Encoding.DER)
    root = _write(tmp_path / "root.pem", h.root.cert)
    good = cli(leaf_der, "--untrusted", inter, "--anchor", root,
               "--hostname", "127.0.0.1", "--at", AT_T0, "--json")
    bad = cli(leaf_der, "--untrusted", inter, "--anchor", root,
              "--hostname", "127.0.0.2", "--at", AT_T0, "--json")
    assert good.returncode == 0, good.stdout + good.stderr
    assert json.loads(good.stdout)["outcome"] == "valid"
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["reason"] == "nameMismatch"


def test_code_signing_preset_and_purpose(tmp_path: Path) -> None:
    h = f.hierarchy("CLI")
    signer = f.leaf(h.inter, ekus=(ExtendedKeyUsageOID.CODE_SIGNING,),
                    key=f.ec_key("cli-signer"), serial=0x99)
    chain = _write(tmp_path / "chain.pem", signer.cert, h.inter.cert)
    root = _write(tmp_path / "root.pem", h.root.cert)
    ok = cli(chain, "--anchor", root, "--policy", "codeSigning",
             "--purpose", "codeSigning", "--at", AT_T0, "--json")
    eku = cli(chain, "--anchor", root, "--purpose", "emailSmime",
              "--at", AT_T0, "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["policy"] == "codeSigning"
    assert eku.returncode == 1
    assert json.loads(eku.stdout)["reason"] == "badEku"


def test_help_exits_zero() -> None:
    proc = cli("--help")
    assert proc.returncode == 0
    for word in ("--hostname", "--policy", "--purpose", "--at", "--json",
                 "Exit status"):
        assert word in proc.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("{junk}", "--mozilla"), "not a certificate"),
        ((str(GOOGLE),), "no trust anchors"),
        ((str(GOOGLE), "--mozilla", "--at", "yesterday"), "not ISO 8601"),
        ((str(GOOGLE), "--mozilla", "--hostname", "bad host!"),
         "not a DNS name or IP address"),
        ((str(GOOGLE), "--mozilla", "--policy", "lax"), "invalid choice"),
        (("{missing}", "--mozilla"), "cannot read"),
        # atEpochSeconds = 0 is "now" to the CertVerifier: the epoch's
        # first second, however written, would verify at the wrong time.
        ((str(GOOGLE), "--mozilla", "--hostname", "google.com", "--at",
          "@0"), "means 'now' to the CertVerifier"),
        ((str(GOOGLE), "--mozilla", "--hostname", "google.com", "--at",
          "1970-01-01T00:00:00.5"), "means 'now' to the CertVerifier"),
        ((str(GOOGLE), "--mozilla", "--hostname", "google.com",
          "--staple", "{junk}"), "not a DER OCSP response"),
    ],
    ids=["garbage", "no-anchors", "bad-time", "bad-host", "bad-preset",
         "missing-file", "epoch-zero", "epoch-first-second",
         "staple-not-ocsp"],
)
def test_usage_errors_exit_two(tmp_path: Path, argv: tuple[str, ...],
                               message: str) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"not a certificate at all")
    args = [a.format(junk=junk, missing=tmp_path / "nope.pem")
            for a in argv]
    proc = cli(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
