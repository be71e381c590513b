"""The host verification command line, on real chains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools import verify

CHAINS = Path(__file__).resolve().parent.parent / "vectors" / "chains"
GOOGLE = CHAINS / "google.com.pem"
IN_VALIDITY = "2026-03-01T00:00:00Z"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = verify.main(list(argv))
    return code, capsys.readouterr().out


def test_valid_against_mozilla(capsys) -> None:
    code, out = run(capsys, str(GOOGLE), "--mozilla", "--hostname",
                    "google.com", "--at", IN_VALIDITY, "--json")
    result = json.loads(out)
    assert code == verify.EXIT_VALID
    assert result["outcome"] == "valid"
    assert result["hostname"] == "google.com"


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("--hostname", "example.com", "--at", IN_VALIDITY), "nameMismatch"),
        (("--hostname", "google.com", "--at", "2027-01-01T00:00:00Z"),
         "expired"),
        (("--hostname", "google.com", "--at", "2025-01-01T00:00:00Z"),
         "notYetValid"),
        (("--hostname", "google.com", "--at", IN_VALIDITY, "--purpose",
          "codeSigning"), "badEku"),
    ],
    ids=["wrong-name", "expired", "not-yet-valid", "wrong-purpose"],
)
def test_invalid_reasons(capsys, args, reason) -> None:
    code, out = run(capsys, str(GOOGLE), "--mozilla", *args, "--json")
    assert code == verify.EXIT_INVALID
    assert json.loads(out)["reason"] == reason


def test_unknown_anchor_when_only_an_unrelated_root_is_trusted(
        capsys) -> None:
    other = CHAINS / "letsencrypt.org.pem"
    code, out = run(capsys, str(GOOGLE), "--anchor", str(other),
                    "--hostname", "google.com", "--at", IN_VALIDITY)
    assert code == verify.EXIT_INVALID
    assert out.startswith("FAILED (unknownAnchor)")


def test_garbage_is_a_usage_error(tmp_path, capsys) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"not a certificate at all")
    assert verify.main([str(junk), "--mozilla"]) == verify.EXIT_USAGE
    assert "not a certificate" in capsys.readouterr().err


def test_no_anchors_is_a_usage_error(capsys) -> None:
    assert verify.main([str(GOOGLE)]) == verify.EXIT_USAGE
    assert "no trust anchors" in capsys.readouterr().err
