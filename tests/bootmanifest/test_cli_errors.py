"""``python -m bootmanifest`` on bad input, run as a subprocess: each
refusal exits 2 (usage or input) or 1 (an input refused), with one
``error:`` line naming the reason and no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bootmanifest import sign

REPO = Path(__file__).resolve().parent.parent.parent


def bootmanifest(*argv: str | Path, stdout: int | None = subprocess.PIPE,
                 ) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SOURCE_DATE_EPOCH="1790000000")
    return subprocess.run(
        [sys.executable, "-m", "bootmanifest", *map(str, argv)],
        cwd=REPO, env=env, stdout=stdout, stderr=subprocess.PIPE,
        text=True, timeout=120, check=False)


def refused(proc: subprocess.CompletedProcess[str], code: int,
            *words: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("python -m bootmanifest build: error: "), last
    for word in words:
        assert word in last, last


@pytest.fixture
def base(tmp_path: Path, acme_root_pem: Path) -> list[str]:
    """Arguments of a build that works, with its output in tmp_path."""
    sign.load_or_create_key(tmp_path / "k.key")
    return ["build", "--key", str(tmp_path / "k.key"), "--extra-anchor",
            f"acme-server-root={acme_root_pem}"]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--services", "{tmp}/missing.json"],
         ["cannot read", "missing.json", "No such file"]),
        (["--presets", "{tmp}/empty.json"],
         ["--presets", "empty.json", "not JSON"]),
        (["--presets", "{tmp}/list.json"],
         ["--presets", 'expected {"presets"']),
        (["--services", "{tmp}/empty.json"],
         ["--services", "not JSON"]),
        (["--data-dir", "{tmp}/nonexistent"],
         ["--data-dir", "not a directory"]),
        (["--data-dir", "{tmp}"],
         ["cannot read", "mozilla_roots_metadata.json"]),
        (["--out", "{tmp}"], ["--out", "is a directory"]),
        (["--out", "{tmp}/no/such/dir/x.bin"],
         ["--out", "no/such/dir does not exist"]),
        (["--version", "99999999999999999999999"],
         ["--version", "out of range 0..18446744073709551615"]),
        (["--version", "-1"], ["--version", "out of range"]),
        (["--valid-days", "0"], ["--valid-days", "out of range"]),
        (["--threshold", "x"], ["--threshold", "not an integer"]),
    ],
    ids=["services-missing", "presets-empty", "presets-shape",
         "services-empty", "data-dir-missing", "data-dir-empty",
         "out-is-dir", "out-parent-missing", "version-overflow",
         "version-negative", "valid-days-zero", "threshold-not-int"],
)
def test_bad_input_exits_two(tmp_path: Path, base: list[str],
                             extra: list[str], words: list[str]) -> None:
    (tmp_path / "empty.json").write_bytes(b"")
    (tmp_path / "list.json").write_text('{"presets": 5}')
    args = [a.format(tmp=tmp_path) for a in extra]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "m.bin")]
    proc = bootmanifest(*base, *args)
    refused(proc, 2, *words)
    assert not (tmp_path / "m.bin").exists()
    # A missing --out directory is refused, not created.
    assert not (tmp_path / "no").exists()


def test_missing_extra_anchor_names_the_flag(tmp_path: Path) -> None:
    sign.load_or_create_key(tmp_path / "k.key")
    proc = bootmanifest("build", "--key", tmp_path / "k.key", "--out",
                        tmp_path / "m.bin")
    refused(proc, 1, "graph: service 'trust': unknown input section "
            "'anchor:acme-server-root'",
            "(give --extra-anchor acme-server-root=PEMFILE)")
    assert not (tmp_path / "m.bin").exists()


@pytest.mark.parametrize("where", ["no/such/dir/k.key", "k.key"],
                         ids=["dir-missing", "file-missing"])
def test_build_refuses_a_missing_key_and_makes_none(
        tmp_path: Path, acme_root_pem: Path, where: str) -> None:
    """A --key that does not exist is a mistake, not a request for a new
    key: exit 2 naming it, with no key and no directory made."""
    key = tmp_path / where
    proc = bootmanifest("build", "--key", key, "--out", tmp_path / "m.bin",
                        "--extra-anchor", f"acme-server-root={acme_root_pem}")
    refused(proc, 2, f"key {key}: no such key",
            f"only the default key, {sign.DEFAULT_KEY}, is made on first "
            "use")
    assert not key.exists()
    assert not (tmp_path / "no").exists()
    assert not (tmp_path / "m.bin").exists()


def test_build_makes_the_default_key_on_first_use(
        tmp_path: Path, acme_root_pem: Path) -> None:
    """Without --key, build makes the default key (0600) where it is
    missing; HOME points the default into tmp_path."""
    env = dict(os.environ, HOME=str(tmp_path), SOURCE_DATE_EPOCH="1790000000")
    proc = subprocess.run(
        [sys.executable, "-m", "bootmanifest", "build", "--out",
         str(tmp_path / "m.bin"), "--extra-anchor",
         f"acme-server-root={acme_root_pem}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        check=False)
    assert proc.returncode == 0, proc.stderr
    key = tmp_path / ".cache" / "capos" / "keys" / "manifest-signing.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "m.bin").exists()


def test_closed_stdout_pipe_is_quiet(tmp_path: Path, base: list[str]
                                     ) -> None:
    out = tmp_path / "m.bin"
    assert bootmanifest(*base, "--out", out).returncode == 0
    # The reader is gone before the command writes its first byte, as
    # with ``| head -1`` on a long listing.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = bootmanifest("inspect", "--json", out, stdout=write_end)
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == ""


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["inspect", "{tmp}/random.bin"], ["random.bin", "malformed"]),
        (["inspect", "{tmp}"], ["cannot read", "Is a directory"]),
        (["verify", "{tmp}/random.bin", "--pubkey", "{tmp}"],
         ["cannot read", "Is a directory"]),
        (["verify", "{tmp}/random.bin", "--pubkey", "{tmp}/random.bin"],
         ["--pubkey", "neither PEM nor hex"]),
        (["verify", "{tmp}/random.bin", "--pubkey", "{tmp}/random.bin",
          "--installed-version", "-1"],
         ["--installed-version", "out of range"]),
        (["pubkey", "--key", "{tmp}"], ["key", "Is a directory"]),
    ],
    ids=["inspect-garbage", "inspect-dir", "verify-pubkey-dir",
         "verify-pubkey-garbage", "verify-installed-negative",
         "pubkey-key-dir"],
)
def test_other_commands_bad_input_exit_two(
        tmp_path: Path, argv: list[str], words: list[str]) -> None:
    (tmp_path / "random.bin").write_bytes(os.urandom(512))
    args = [a.format(tmp=tmp_path) for a in argv]
    proc = bootmanifest(*args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"python -m bootmanifest {argv[0]}: error: "), \
        last
    for word in words:
        assert word in last, last


@pytest.mark.parametrize("json_out", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("what", ["not-an-envelope", "signed-garbage"])
def test_verify_malformed_manifest_exits_two_as_inspect(
        tmp_path: Path, what: str, json_out: bool) -> None:
    """A file that does not parse as a signed manifest is bad input, as
    verify's help and inspect say (exit 2), not an invalid manifest
    (1): text, and garbage in an envelope signed by the trusted
    key (it fails only at parsing the manifest, after the signature)."""
    key = sign.load_or_create_key(tmp_path / "k.key")
    pub = tmp_path / "pub.hex"
    pub.write_text(sign.raw_public(key.public_key()).hex() + "\n")
    bad = tmp_path / "bad.bin"
    detail = "not a SignedManifest"
    if what == "signed-garbage":
        bad.write_bytes(sign.sign(b"not a manifest!!", [key]))
        detail = "not a BootManifest"
    else:
        bad.write_bytes(b"not a signed manifest\n" * 20)
    proc = bootmanifest("verify", bad, "--pubkey", pub,
                        *(["--json"] if json_out else []))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"python -m bootmanifest verify: error: {bad}: malformed: "
        f"{detail}")
    if json_out:
        assert json.loads(proc.stdout) == {
            "valid": False, "reason": "malformed", "detail": detail}
    else:
        assert proc.stdout == ""
    inspect = bootmanifest("inspect", bad)
    assert inspect.returncode == 2, inspect.stderr
