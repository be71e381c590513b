"""The data disk: what must survive a reboot lives on virtio-blk.

capos-init records the installed manifest version there (write, fsync,
rename) and refuses a manifest older than it, which is the rollback
protection of DESIGN section 3; stateful services get a private
directory on it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bootmanifest import cli
from tests.vm.conftest import build_for_tests
from tools import run
from tools.vm import VM, debugfs, make_data_disk, read_data_file

pytestmark = pytest.mark.vm

#: The guest's ACME client needs a directory URL to start; nothing
#: listens on this guest-local port, so no traffic leaves the guest.
NO_ACME = "capos.setting=acmeDirectory=https://127.0.0.1:9/dir"


def _image() -> tuple[Path, int]:
    report = run.Report()
    manifest, pub = run.build_manifest(report)
    image = run.REPO / "build/image"
    build_for_tests(image, manifest=manifest, pubkey=pub)
    return image, int(cli.summary(manifest.read_bytes())["version"])


def test_version_and_service_state_are_kept_on_the_disk(
        tmp_path: Path) -> None:
    image, version = _image()
    disk = make_data_disk(tmp_path / "data.img")
    with VM(image, append=NO_ACME, data_disk=disk) as vm:
        console = vm.console()
    assert "data disk /dev/vda mounted on /data" in console
    assert f"manifest-verified version={version}" in console
    # The VM was stopped with QMP quit, a power cut for the guest: what
    # init fsynced before CAPOS-READY is on the disk.
    assert read_data_file(disk, "init/installed-version") == (
        f"{version}\n".encode())
    assert "certstore" in debugfs(disk, "ls -l /services")
    assert "Mode:  0700" in debugfs(disk, "stat /services/certstore")


def test_an_older_manifest_than_the_disk_records_stops_the_boot(
        tmp_path: Path) -> None:
    image, version = _image()
    newer = f"{version + 1}\n".encode()
    disk = make_data_disk(tmp_path / "data.img",
                          files={"init/installed-version": newer})
    with VM(image, append=NO_ACME, data_disk=disk,
            ready=r"CAPOS-(READY|FATAL)") as vm:
        line = vm.ready_line
        vm.wait_for(r"services\.init exited rc=3", 60)
        console = vm.console()
    assert line.startswith("CAPOS-FATAL rollback:"), line
    assert str(version + 1) in line
    assert "CAPOS-STAGE" not in console
    assert "CAPOS-READY" not in console
    assert read_data_file(disk, "init/installed-version") == newer

