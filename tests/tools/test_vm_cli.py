"""``python -m tools.vm boot`` refuses bad arguments before QEMU starts
(run as a subprocess), and ``VM.wait_for`` names the guest's
``CAPOS-FATAL`` line as the reason a boot failed (driven by a real child
process writing the console log; no QEMU here)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tools.vm import VM, VMError

REPO = Path(__file__).resolve().parent.parent.parent
FATAL_LINE = "CAPOS-FATAL badSignature: manifest signature does not verify"


def vm_boot(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.vm", "boot", *map(str, argv)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--data-disk", "/nonexist/x.img"],
         ["--data-disk /nonexist/x.img", "directory /nonexist does not "
          "exist"]),
        (["--data-disk", "{tmp}"], ["--data-disk", "not a regular file"]),
        (["--data-disk", "{tmp}/notes.md"],
         ["--data-disk {tmp}/notes.md: not an ext4 image (no superblock "
          "magic 0xEF53 at byte 1080); give a path that does not exist"]),
        (["--data-disk", "{tmp}/short.img"],
         ["--data-disk {tmp}/short.img: not an ext4 image"]),
        (["--setting", "bogus"], ["--setting 'bogus'",
                                  "expected KEY=VALUE"]),
        (["--setting", "=value"], ["expected KEY=VALUE"]),
        (["--setting", "tlsName=a\tb"], ["no white space"]),
        (["--kernel-arg", "capos.debug=importtime quiet"],
         ["--kernel-arg 'capos.debug=importtime quiet'", "one word"]),
        (["--kernel-arg", ""], ["--kernel-arg ''", "one word"]),
        (["--kernel-arg", 'capos.x="y'], ["no white space or quotes"]),
        (["--setting", "bogusKey=1"],
         ["no service reads 'bogusKey'", "known: acmeContact"]),
    ],
    ids=["data-disk-parent-missing", "data-disk-is-dir",
         "data-disk-not-ext4", "data-disk-short", "setting-no-eq",
         "setting-no-key", "setting-space", "kernel-arg-two-words",
         "kernel-arg-empty", "kernel-arg-quote", "setting-unknown"],
)
def test_bad_arguments_exit_two(tmp_path: Path, args: list[str],
                                words: list[str]) -> None:
    (tmp_path / "notes.md").write_text("# not a file system\n" * 200)
    (tmp_path / "short.img").write_bytes(b"\x53\xef")
    argv = [a.format(tmp=tmp_path) for a in args]
    words = [w.format(tmp=tmp_path) for w in words]
    # No image either: were an argument let through, the boot would
    # fail at once (exit 1) rather than start QEMU.
    proc = vm_boot(*argv, "--image", tmp_path / "none")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("python -m tools.vm: error: "), last
    for word in words:
        assert word in last, last
    assert "boot failed" not in proc.stderr  # nothing was started


def test_an_ext4_data_disk_is_taken(tmp_path: Path) -> None:
    """A data disk mkfs.ext4 made passes the check: the boot goes on to
    fail only for the missing image, and the disk is left as it was."""
    from tools.vm import make_data_disk

    disk = make_data_disk(tmp_path / "data.img", size_mb=8)
    before = disk.read_bytes()
    proc = vm_boot("--data-disk", disk, "--image", tmp_path / "none")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("boot failed: missing "), proc.stderr
    assert disk.read_bytes() == before


def test_missing_image_boot_fails_naming_the_build(tmp_path: Path
                                                   ) -> None:
    proc = vm_boot("--image", tmp_path / "none")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"boot failed: missing {tmp_path / 'none' / 'vmlinux'}; build it "
        "with `.venv/bin/python -m image.build --out build/image "
        "--manifest build/manifest.bin --pubkey build/manifest.pub` (or "
        "`make image`)"]


def test_missing_image_with_json_and_a_data_disk(tmp_path: Path) -> None:
    """--json: the failure as JSON on stdout; and no data disk is made
    for a boot that cannot start."""
    disk = tmp_path / "data.img"
    proc = vm_boot("--image", tmp_path / "none", "--json",
                   "--data-disk", disk)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["outcome"] == "error" and doc["reason"] == "bootFailed"
    assert doc["detail"].startswith(
        f"missing {tmp_path / 'none' / 'vmlinux'}; build it with ")
    assert not disk.exists()


def _guest(vm: VM, script: str) -> None:
    """Run ``script`` as the VM's process, writing its console log."""
    (vm._tmp / "qemu.err").write_text("")
    vm.console_log.touch()
    vm._proc = subprocess.Popen(
        ["sh", "-c", script, "sh", str(vm.console_log)])
    vm._proc.wait(30)


def test_guest_fatal_line_is_the_failure_reason(tmp_path: Path) -> None:
    vm = VM(tmp_path / "image")
    try:
        # What capos-init does on a bad manifest: say why, then the
        # guest powers off and QEMU exits with status 0.
        _guest(vm, f'echo "capos-boot: start services.init" >> "$1"; '
                   f'echo "{FATAL_LINE}" >> "$1"; '
                   f'echo "capos-boot: services.init exited rc=3" >> "$1"')
        with pytest.raises(VMError) as caught:
            vm.wait_for("CAPOS-READY", 30)
        assert caught.value.reason == f"guest: {FATAL_LINE}"
    finally:
        vm.stop()


def test_waiting_for_the_fatal_line_then_past_it(tmp_path: Path) -> None:
    # tests/vm/test_manifest.py: wait for READY or FATAL, then for a
    # later line; the FATAL line already seen does not end the second.
    vm = VM(tmp_path / "image")
    try:
        _guest(vm, f'echo "{FATAL_LINE}" >> "$1"; '
                   'echo "capos-boot: services.init exited rc=3" >> "$1"')
        assert vm.wait_for(r"CAPOS-(READY|FATAL)", 30) == FATAL_LINE
        assert vm.wait_for(r"services\.init exited rc=3", 30).endswith(
            "exited rc=3")
    finally:
        vm.stop()


def test_exit_without_fatal_line_names_the_exit(tmp_path: Path) -> None:
    vm = VM(tmp_path / "image")
    try:
        _guest(vm, 'echo "capos-boot: hello" >> "$1"; exit 0')
        with pytest.raises(VMError) as caught:
            vm.wait_for("CAPOS-READY", 30)
        assert caught.value.reason == "qemu exited rc=0"
    finally:
        vm.stop()


def test_a_second_stop_keeps_the_kept_logs(tmp_path: Path) -> None:
    """A boot that fails (or is interrupted) stops the VM, keeping its
    console and audit files; the caller's own stop afterwards must not
    forget where they went (tools.run's report said ``None``)."""
    vm = VM(tmp_path / "image", keep_log=True, console_dir=tmp_path / "kept")
    _guest(vm, 'echo "capos-boot: hello" >> "$1"')
    vm.audit_log.write_text('{"service": "audit"}\n')
    vm.stop(failed=True)
    first = (vm.kept_log, vm.kept_audit)
    vm.stop()
    assert (vm.kept_log, vm.kept_audit) == first
    assert vm.kept_log is not None and vm.kept_audit is not None
    assert vm.kept_log.parent == tmp_path / "kept"
    assert vm.kept_log.read_text() == "capos-boot: hello\n"
    assert vm.kept_audit.read_text() == '{"service": "audit"}\n'


def test_missing_image_names_the_build_command(tmp_path: Path) -> None:
    with pytest.raises(VMError) as caught, VM(tmp_path / "none"):
        pass
    reason = caught.value.reason
    assert reason.startswith(f"missing {tmp_path / 'none' / 'vmlinux'}; ")
    assert "--manifest build/manifest.bin --pubkey build/manifest.pub" \
        in reason
    assert "console log" not in reason


def test_slowest_imports_parses_importtime_lines() -> None:
    from tools.vm import slowest_imports

    console = [
        "capos-boot: t=2.1s start services.init",
        "import time: self [us] | cumulative | imported package",
        "import time:       120 |        120 |     _io",
        "import time:     95950 |     143343 |   services._runtime.host",
        "import time:      3591 |      17970 | services._runtime.clock",
        "CAPOS-READY services=audit t=3.0",
    ]
    assert slowest_imports(console, top=2) == [
        {"module": "services._runtime.host", "self_ms": 96.0,
         "cumulative_ms": 143.3},
        {"module": "services._runtime.clock", "self_ms": 3.6,
         "cumulative_ms": 18.0}]
    assert slowest_imports(console[:1]) == []


def test_qmp_connect_waits_out_a_bound_socket_not_yet_listening(
        tmp_path: Path) -> None:
    """QEMU binds its QMP socket before it listens; a connect in between
    is refused. The harness tries again instead of failing the boot
    (fault injected: a socket that listens 0.3 s after it is bound, then
    speaks the QMP greeting and capabilities exchange)."""
    vm = VM(tmp_path / "image")
    vm._proc = subprocess.Popen(["sleep", "30"])
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(vm._qmp_sock))
    said: list[bytes] = []

    def qemu_late() -> None:
        time.sleep(0.3)
        server.listen(1)
        conn, _ = server.accept()
        with conn:
            conn.sendall(b'{"QMP": {"version": {"qemu": {"micro": 0, '
                         b'"minor": 2, "major": 7}, "package": ""}, '
                         b'"capabilities": []}}\r\n')
            # QMP is a stream of JSON values, not lines.
            buf = b""
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
                try:
                    said.append(json.loads(buf))
                except ValueError:
                    continue
                break
            conn.sendall(json.dumps({"return": {},
                                     "id": said[0].get("id")}).encode()
                         + b"\r\n")
            conn.recv(4096)

    peer = threading.Thread(target=qemu_late, daemon=True)
    peer.start()
    try:
        vm._loop.run_until_complete(vm._connect())
        assert vm._qmp is not None
        assert said[0]["execute"] == "qmp_capabilities"
    finally:
        vm.stop()
        peer.join(5)
        server.close()
