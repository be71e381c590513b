"""Bad input to ``python -m tools.verify`` and ``python -m tools.run``,
run as subprocesses: usage errors exit 2 with one ``error:`` line (and,
for ``tools.verify --json``, one error object on stdout), no traceback;
a closed stdout pipe ends a command quietly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
GOOGLE = REPO / "tests" / "vectors" / "chains" / "google.com.pem"
IN_VALIDITY = "2026-03-01T00:00:00Z"
HOSTNAME_REQUIRED = "--hostname is required for --purpose tlsServerAuth"


def module(name: str, *argv: str | Path, stdout: int | None = subprocess.PIPE,
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", name, *map(str, argv)], cwd=REPO,
        stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120,
        check=False)


def usage_error(proc: subprocess.CompletedProcess[str], prog: str,
                *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{prog}: error: "), last
    for word in words:
        assert word in last, last


@pytest.mark.parametrize("hostname", [[], ["--hostname", ""]],
                         ids=["absent", "empty"])
def test_verify_tls_server_needs_a_hostname(hostname: list[str]) -> None:
    proc = module("tools.verify", GOOGLE, "--mozilla", *hostname, "--at",
                  IN_VALIDITY)
    usage_error(proc, "python -m tools.verify", HOSTNAME_REQUIRED)
    assert proc.stdout == ""


@pytest.mark.parametrize(
    ("argv", "reason", "words"),
    [
        ((GOOGLE, "--mozilla", "--at", IN_VALIDITY), "usage",
         HOSTNAME_REQUIRED),
        (("{tmp}/missing.pem", "--mozilla"), "unreadableInput",
         "cannot read"),
        (("{tmp}/junk.pem", "--mozilla"), "malformedInput",
         "not a certificate"),
        ((GOOGLE, "--hostname", "google.com"), "noAnchors",
         "no trust anchors"),
        ((GOOGLE, "--mozilla", "--policy", "lax"), "usage",
         "invalid choice"),
        ((GOOGLE, "--mozilla", "--hostname", "google.com", "--at",
          "yesterday"), "usage", "not ISO 8601"),
    ],
    ids=["no-hostname", "missing-file", "garbage", "no-anchors",
         "bad-flag-value", "bad-time"],
)
def test_verify_json_reports_usage_errors(
        tmp_path: Path, argv: tuple[str | Path, ...], reason: str,
        words: str) -> None:
    (tmp_path / "junk.pem").write_bytes(b"not a certificate")
    args = [str(a).format(tmp=tmp_path) for a in argv]
    proc = module("tools.verify", *args, "--json")
    usage_error(proc, "python -m tools.verify", words)
    out = json.loads(proc.stdout)
    assert out["outcome"] == "error"
    assert out["reason"] == reason
    assert words in out["detail"]


def test_verify_help_names_the_module() -> None:
    proc = module("tools.verify", "--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: python -m tools.verify ")
    assert "capos-verify" not in proc.stdout


def test_verify_closed_stdout_pipe_is_quiet() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # as ``| head`` does once it has its lines
    try:
        proc = module("tools.verify", GOOGLE, "--mozilla", "--hostname",
                      "google.com", "--at", IN_VALIDITY, "--json",
                      stdout=write_end)
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == ""


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (("--nonce-reject", "200"), ("--nonce-reject", "not in 0..100")),
        (("--nonce-reject", "-1"), ("--nonce-reject", "not in 0..100")),
        (("--nonce-reject", "x"), ("--nonce-reject", "not an integer")),
        (("--issue-timeout", "-1"),
         ("--issue-timeout", "not a positive finite number")),
        (("--issue-timeout", "0"), ("--issue-timeout",)),
        (("--issue-timeout", "nan"), ("--issue-timeout",)),
    ],
    ids=["nonce-200", "nonce-negative", "nonce-not-int", "timeout-negative",
         "timeout-zero", "timeout-nan"],
)
def test_run_range_checks(argv: tuple[str, ...], words: tuple[str, ...]
                          ) -> None:
    # Refused by argparse, before any step (manifest, image, VM) runs.
    proc = module("tools.run", *argv)
    usage_error(proc, "python -m tools.run", *words)
    assert "run: manifest" not in proc.stdout


def test_run_help_names_the_module() -> None:
    proc = module("tools.run", "--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: python -m tools.run ")
    assert "capos-run" not in proc.stdout


def test_run_help_lists_every_exit_status() -> None:
    proc = module("tools.run", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for said in ("0 every step worked", "1 a step failed",
                 "130 interrupted (Ctrl-C or SIGTERM", "2 usage error",
                 "`make run` exits 2 for all but 0"):
        assert said in text, said


@pytest.mark.parametrize("status", [0, 1, 130])
def test_make_run_exits_two_whatever_tools_run_returns(status: int
                                                       ) -> None:
    """What the README says of make: the recipe's own status (tools.run's
    1, or 130 after a SIGTERM) becomes 2. The repository's Makefile, its
    command stood in for by one exiting ``status`` (setup not run)."""
    proc = subprocess.run(
        ["make", "-s", "-o", "setup", "run",
         f"PY={sys.executable} -c 'raise SystemExit({status})'"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == (0 if status == 0 else 2), proc.stderr
    if status:
        assert proc.stderr.strip().endswith(f"run] Error {status}")
