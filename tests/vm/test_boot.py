"""Boot the image under TCG and complete a real TLS handshake with it."""
from __future__ import annotations

import hashlib
import re
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from tests.vm.conftest import reaped
from tools.vm import GUEST_MB, VM

pytestmark = pytest.mark.vm


def test_boot_and_tls_handshake(image_dir: Path) -> None:
    with VM(image_dir, guest="smoke") as vm:
        assert vm.ready_line == "CAPOS-READY smoke"
        m = re.search(r"cert sha256 ([0-9a-f]{64})", vm.console())
        assert m, "guest did not print its certificate fingerprint"
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # pinned by fingerprint below
        with socket.create_connection(("127.0.0.1", vm.port),
                                      timeout=30) as raw:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with ctx.wrap_socket(raw, server_hostname="capos-smoke") as s:
                der = s.getpeercert(binary_form=True)
                version = s.version()
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                body = s.recv(4096)
        assert version == "TLSv1.3"
        assert der is not None
        assert hashlib.sha256(der).hexdigest() == m.group(1)
        assert body.endswith(b"capos-smoke")
        mem = vm.qmp("query-memory-size-summary")
        assert mem["base-memory"] == GUEST_MB << 20  # type: ignore[index]


def test_missing_image_is_reported(tmp_path: Path) -> None:
    from tools.vm import VMError
    with pytest.raises(VMError) as ei:
        with VM(tmp_path):
            pass
    assert "missing" in ei.value.reason


def test_boot_command_reports_the_full_image_ready_on_a_data_disk(
        image_dir: Path, tmp_path: Path) -> None:
    """``python -m tools.vm boot`` on the full image, with no ACME server:
    every service comes up, the data disk is made and mounted."""
    import json

    disk = tmp_path / "data.img"
    proc = subprocess.run(
        [sys.executable, "-m", "tools.vm", "boot", "--image",
         str(image_dir), "--data-disk", str(disk), "--json",
         "--kernel-arg", "capos.debug=importtime", "--translation"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads(proc.stdout)
    assert info["ready"].startswith("CAPOS-READY services=audit,trust,")
    assert info["memory_kb"]["peak"] > 0
    assert any("data disk /dev/vda mounted" in t
               for t in info["guest_timings"])
    assert disk.exists()
    # One stage per service, in start order, after the manifest check.
    services = info["ready"].split()[1].removeprefix("services=")
    stages = [s.split()[1:3] for s in info["stages"]]
    assert stages[0][0] == "manifest-verified"
    assert [name for what, name in
            (s for s in stages if s[0] == "started")] == services.split(",")
    # capos.debug=importtime: the guest's own import times, parsed.
    slowest = info["slowest_imports"]
    assert len(slowest) == 10
    assert all(s["self_ms"] > 0 for s in slowest)
    assert slowest == sorted(slowest, key=lambda s: -s["self_ms"])
    # --translation: QEMU's block count at each progress line, growing
    # as the boot runs new code, and the total when it reported.
    by_line = info["translation_blocks_by_line"]
    ready_blocks = by_line[info["ready"]]
    counts = list(by_line.values())
    assert counts == sorted(counts) and counts[0] > 0
    assert counts[-1] == ready_blocks
    assert 0 < ready_blocks <= info["translation"]["blocks"]
    assert info["translation"]["code_bytes"] > 0


def test_boot_command_names_a_missing_image(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tools.vm", "boot", "--image",
         str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "boot failed: missing" in proc.stderr


def test_a_forward_port_taken_before_qemu_binds_it_is_replaced(
        image_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The port was free when picked and another process bound it before
    QEMU did: QEMU exits at once, and the harness boots on another port
    instead of failing the boot (seen in ``make bench`` beside a test
    run)."""
    from tools import vm as vm_module

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    picks = iter([taken])
    real = vm_module._free_port
    monkeypatch.setattr(vm_module, "_free_port",
                        lambda: next(picks, None) or real())
    try:
        with VM(image_dir, guest="smoke") as vm:
            assert vm.ready_line == "CAPOS-READY smoke"
            assert vm.port != taken
            with socket.create_connection(("127.0.0.1", vm.port),
                                          timeout=30):
                pass
    finally:
        squatter.close()


def test_boot_keep_names_the_kept_console_log(image_dir: Path) -> None:
    """``tools.vm boot --keep``: the VM serves until Ctrl-C, then the
    command names the console log it kept under logs/ (the file QEMU
    wrote is in a temporary directory that is gone by then)."""
    import signal

    from tools.vm import LOGS

    with reaped(subprocess.Popen(
            [sys.executable, "-m", "tools.vm", "boot", "--image",
             str(image_dir), "--guest", "smoke", "--keep"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)) as proc:
        assert proc.stderr is not None
        said = proc.stderr.readline()
        assert said == ("VM kept running; Ctrl-C stops it and keeps the "
                        f"console log in {LOGS}\n"), said
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "ready in " in out
    last = err.strip().splitlines()[-1]
    assert last.startswith("console log kept: "), err
    kept = Path(last.removeprefix("console log kept: "))
    try:
        assert kept.parent == LOGS
        assert "CAPOS-READY smoke" in kept.read_text()
    finally:
        kept.unlink(missing_ok=True)
        for audit in LOGS.glob(f"audit-*-{proc.pid}.jsonl"):
            audit.unlink()
