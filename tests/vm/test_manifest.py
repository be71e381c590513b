"""A tampered manifest must stop the boot before any service starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootmanifest import sign
from tests.vm.conftest import build_for_tests
from tools import run
from tools.vm import VM

pytestmark = pytest.mark.vm


def test_tampered_manifest_stops_the_boot(tmp_path: Path) -> None:
    manifest, pub = run.build_manifest(run.Report())
    data = bytearray(manifest.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit inside the signed bytes
    bad = tmp_path / "tampered.bin"
    bad.write_bytes(bytes(data))
    with pytest.raises(sign.ManifestError):
        sign.verify(bytes(data), [sign.load_or_create_key().public_key()],
                    1, 0, run_clock_now())
    image = tmp_path / "image"
    build_for_tests(image, manifest=bad, pubkey=pub)
    with VM(image, ready=r"CAPOS-(READY|FATAL)") as vm:
        line = vm.ready_line
        vm.wait_for(r"services\.init exited rc=3", 60)
        console = vm.console()
    assert line.startswith("CAPOS-FATAL badSignature:"), line
    assert "CAPOS-STAGE" not in console
    assert "CAPOS-READY" not in console
    assert "CAPOS-GATEWAY" not in console


def run_clock_now():  # tiny helper
    from services._runtime.clock import SystemClock

    return SystemClock().now()
