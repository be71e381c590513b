"""``python -m image.build`` on bad input, run as a subprocess: a missing
file is a usage error (2); a manifest that does not verify under
``--pubkey`` is refused before anything is fetched or written (1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)

from bootmanifest import cli as manifest_cli
from bootmanifest import sign
from image import build

REPO = Path(__file__).resolve().parent.parent.parent
VERSION = 42


def image_build(*argv: str | Path, env: dict[str, str] | None = None,
                ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "image.build", *map(str, argv)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        check=False, env=env)


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A manifest valid for a century, and its verifying key (hex)."""
    from tests.bootmanifest.conftest import _test_root_pem

    tmp = tmp_path_factory.mktemp("manifest")
    root = tmp / "root.pem"
    root.write_bytes(_test_root_pem())
    key = tmp / "signing.key"
    sign.load_or_create_key(key)
    manifest = tmp / "manifest.bin"
    assert manifest_cli.main([
        "build", "--out", str(manifest), "--key", str(key), "--version",
        str(VERSION), "--valid-days", "36500", "--extra-anchor",
        f"acme-server-root={root}"]) == 0
    pub = tmp / "manifest.pub"
    pub.write_text(sign.raw_public(
        sign.load_or_create_key(key).public_key()).hex() + "\n")
    return manifest, pub


def test_verify_manifest_accepts_the_signed_manifest(
        signed: tuple[Path, Path]) -> None:
    assert build.verify_manifest(*signed) == VERSION


def _flip(data: bytes) -> bytes:
    out = bytearray(data)
    out[len(out) // 2] ^= 0x01  # inside the signed manifest bytes
    return bytes(out)


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("flipped-byte", ["badSignature"]),
        ("random-bytes", ["malformed"]),
        ("wrong-key", ["unknownSigner"]),
        ("garbage-key", ["--pubkey", "neither PEM nor hex"]),
    ],
)
def test_manifest_that_does_not_verify_is_refused(
        tmp_path: Path, signed: tuple[Path, Path], case: str,
        words: list[str]) -> None:
    manifest, pub = signed
    if case == "flipped-byte":
        manifest = tmp_path / "flipped.bin"
        manifest.write_bytes(_flip(signed[0].read_bytes()))
    elif case == "random-bytes":
        manifest = tmp_path / "random.bin"
        manifest.write_bytes(os.urandom(4096))
    elif case == "wrong-key":
        pub = tmp_path / "other.pub"
        pub.write_text(sign.raw_public(
            Ed25519PrivateKey.generate().public_key()).hex())
    else:
        pub = tmp_path / "garbage.pub"
        pub.write_bytes(b"not a key\n")
    out = tmp_path / "image"
    proc = image_build("--manifest", manifest, "--pubkey", pub, "--out",
                       out)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("image build failed: "), last
    for word in words:
        assert word in last, last
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--manifest", "{tmp}/missing", "--pubkey", "{pub}"],
         ["--manifest", "missing: no such file"]),
        (["--manifest", "{manifest}", "--pubkey", "{tmp}/missing"],
         ["--pubkey", "missing: no such file"]),
        (["--manifest", "{tmp}", "--pubkey", "{pub}"],
         ["--manifest", "not a regular file"]),
        (["--manifest", "{manifest}"],
         ["--manifest and --pubkey go together"]),
        (["--pubkey", "{pub}"], ["--manifest and --pubkey go together"]),
        (["--manifest", "{manifest}", "--pubkey", "{pub}", "--out",
          "{manifest}"], ["--out", "is not a directory"]),
    ],
    ids=["manifest-missing", "pubkey-missing", "manifest-is-dir",
         "no-pubkey", "no-manifest", "out-is-file"],
)
def test_usage_errors_exit_two(tmp_path: Path, signed: tuple[Path, Path],
                               args: list[str], words: list[str]) -> None:
    manifest, pub = signed
    argv = [a.format(tmp=tmp_path, manifest=manifest, pub=pub)
            for a in args]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "image")]
    proc = image_build(*argv)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("python -m image.build: error: "), last
    for word in words:
        assert word in last, last
    assert not (tmp_path / "image").exists()


def test_smoke_only_build_says_so(tmp_path: Path) -> None:
    # A lock whose one input is fetched from a closed local port: the
    # build announces the smoke-only image, then fails at the fetch.
    lock = tmp_path / "lock.json"
    lock.write_text(json.dumps({
        "source_date_epoch": 0, "kernel_package": "none",
        "compressor": {"name": "zstd", "level": 19},
        "debs": [{"name": "none", "version": "1", "sha256": "0" * 64,
                  "url": "http://127.0.0.1:9/none.deb",
                  "file": "none.deb"}],
        "wheels": []}))
    env = dict(os.environ, CAPOS_IMAGE_LOCK=str(lock),
               CAPOS_DL=str(tmp_path / "dl"))
    proc = image_build("--out", tmp_path / "image", env=env)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    smoke = [ln for ln in proc.stderr.splitlines() if "smoke-only" in ln]
    assert smoke == ["[build] no --manifest: smoke-only image (capos-init "
                     "does not start; the guest serves HTTPS from "
                     "image/guest/smoke.py)"]
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "image build failed: fetch http://127.0.0.1:9/none.deb")


def test_help_names_the_command_and_every_option() -> None:
    proc = image_build("--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: python -m image.build ")
    options = proc.stdout.split("options:", 1)[1]
    for flag in ("--out OUT ", "--manifest MANIFEST ", "--pubkey PUBKEY ",
                 "--force "):
        line = next(ln for ln in options.splitlines() if flag in ln)
        assert line.split(flag, 1)[1].strip(), line  # has help text


def test_an_interrupted_build_leaves_nothing_part_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Ctrl-C while the kernel is unpacked: the parts written so far are
    # removed, the last finished image is left as it was, exit 130.
    out = tmp_path / "image"
    out.mkdir()
    (out / "vmlinux").write_bytes(b"the last build's kernel")

    def assemble(p: object, files: object, root: Path, dest: Path) -> None:
        (dest / "vmlinux.tmp").write_bytes(b"half a kernel")
        (dest / "bzImage.tmp").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "fetch", lambda inp: tmp_path / inp.file)
    monkeypatch.setattr(build, "_assemble", assemble)
    assert build.main(["--out", str(out), "--force"]) == 130
    assert "image build interrupted: nothing written" in (
        capsys.readouterr().err)
    assert sorted(p.name for p in out.iterdir()) == ["vmlinux"]
    assert (out / "vmlinux").read_bytes() == b"the last build's kernel"
