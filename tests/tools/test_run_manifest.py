"""``make run``'s manifest step (``tools.run.build_manifest``): built
once per set of inputs, and built again, saying why, when the file kept
from last time cannot be booted (damaged, or signed by another key)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bootmanifest import cli, sign
from tools import run


@pytest.fixture
def build_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(run, "BUILD", tmp_path)
    return tmp_path


def test_a_damaged_cached_manifest_is_built_again(
        build_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run.build_manifest(run.Report())
    out = build_dir / "manifest.bin"
    first = cli.summary(out.read_bytes())["manifestSha256"]
    run.build_manifest(run.Report())
    said = capsys.readouterr().out
    assert "manifest inputs unchanged, reusing" in said
    assert cli.summary(out.read_bytes())["manifestSha256"] == first

    damaged = bytearray(out.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01  # inside the signed bytes
    out.write_bytes(bytes(damaged))
    report = run.Report()
    run.build_manifest(report)
    said = capsys.readouterr().out
    assert "cannot be used again (badSignature" in said
    assert "building it again" in said
    key = sign.load_or_create_key()
    sign.verify(out.read_bytes(), [key.public_key()], 1, 0,
                dt.datetime.now(dt.UTC))
    assert report.facts["manifest"]["sha256"] == cli.summary(
        out.read_bytes())["manifestSha256"]


def test_a_truncated_cached_manifest_is_built_again(
        build_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run.build_manifest(run.Report())
    out = build_dir / "manifest.bin"
    out.write_bytes(out.read_bytes()[:100])
    run.build_manifest(run.Report())
    said = capsys.readouterr().out
    assert "cannot be used again (malformed" in said
    assert cli.summary(out.read_bytes())["version"] > 0
