"""``python -m tools.run``'s report, in process, with no QEMU and no
pebble: the manifest step runs the real ``bootmanifest build`` (with a
throwaway key), the image step the real ``image.build`` command with its
fetch-and-pack stood in for, pebble is a stand-in that starts nothing,
and the boot fails the way the test says."""

from __future__ import annotations

import json
import subprocess
import types
from collections.abc import Callable
from pathlib import Path

import pytest

from bootmanifest import cli as manifest_cli
from bootmanifest import sign
from image import build as image_build
from tests.bootmanifest.conftest import _test_root_pem
from tools import pebble as pebble_mod
from tools import run
from tools import vm as vm_mod

CHILD_SAYS = "a step's child process writing to its stdout"
DIGEST = "ab" * 32


class FakePebble:
    """Stands in for :class:`tools.pebble.Pebble`: nothing starts."""

    def __init__(self, logs: Path, nonce_reject: int = 5) -> None:
        self.ports = types.SimpleNamespace(acme=9, http01=9)

    def __enter__(self) -> FakePebble:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@pytest.fixture
def boot_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
               ) -> Callable[[BaseException], None]:
    """Point tools.run at tmp_path and stand in for the heavy steps;
    call the result with what the guest's boot raises."""
    monkeypatch.setattr(run, "REPO", tmp_path)
    build = tmp_path / "build"
    build.mkdir()
    key = tmp_path / "signing.key"
    sign.load_or_create_key(key)
    root = tmp_path / "acme-root.pem"
    root.write_bytes(_test_root_pem())

    def build_manifest(report: run.Report) -> tuple[Path, Path]:
        out, pub = build / "manifest.bin", build / "manifest.pub"
        assert manifest_cli.main([
            "build", "--out", str(out), "--key", str(key),
            "--extra-anchor", f"acme-server-root={root}"]) == 0
        pub.write_text(sign.raw_public(
            sign.load_or_create_key(key).public_key()).hex() + "\n")
        subprocess.run(["echo", CHILD_SAYS], check=True)
        return out, pub

    def execute(the_plan: object, out: Path, force: bool = False) -> str:
        out.mkdir(parents=True, exist_ok=True)
        (out / "initramfs.cpio.zst").write_bytes(b"\0" * 1000)
        (out / "initramfs.cpio.zst.sha256").write_text(
            f"{DIGEST}  initramfs.cpio.zst\n")
        return DIGEST

    monkeypatch.setattr(run, "build_manifest", build_manifest)
    monkeypatch.setattr(run, "BUILD", build)
    monkeypatch.setattr(image_build, "execute", execute)
    monkeypatch.setattr(pebble_mod, "Pebble", FakePebble)

    def set_failure(raised: BaseException) -> None:
        class BootFails(vm_mod.VM):
            def start(self) -> vm_mod.VM:
                # As VM.start: the console and audit files fill while
                # the guest boots; on any exception it stops, keeping
                # them, and re-raises.
                try:
                    line = "capos-boot: t=0.4s start services.init"
                    self.console_log.write_text(line + "\n")
                    self.audit_log.write_text(json.dumps({
                        "service": "audit", "operation": "start",
                        "outcome": "ok"}) + "\n")
                    if self.progress is not None:
                        self.progress(line)
                    raise raised
                except BaseException:
                    self.stop(failed=True)
                    raise

        monkeypatch.setattr(vm_mod, "VM", BootFails)

    return set_failure


def test_json_report_is_alone_on_stdout(
        boot_fails: Callable[[BaseException], None],
        capfd: pytest.CaptureFixture[str]) -> None:
    """--json: stdout is the JSON report and nothing else; the progress
    lines, bootmanifest's and image.build's output and a child process's
    stdout go to stderr."""
    boot_fails(vm_mod.VMError("no 'CAPOS-READY' on the console"))
    code = run.main(["--json"])
    out, err = capfd.readouterr()
    report = json.loads(out)
    assert code == 1
    assert report["failed"] == "boot"
    assert report["error"] == (
        "VMError: no 'CAPOS-READY' on the console")
    assert report["facts"]["image"]["sha256"] == DIGEST
    for said in ("run: manifest ...", "wrote ", CHILD_SAYS,
                 f"{DIGEST}  ", "run: image done",
                 "run:   guest capos-boot: t=0.4s start services.init",
                 "run: FAILED at step boot"):
        assert said in err, said


def test_without_json_the_progress_stays_on_stdout(
        boot_fails: Callable[[BaseException], None],
        capfd: pytest.CaptureFixture[str]) -> None:
    boot_fails(vm_mod.VMError("no 'CAPOS-READY' on the console"))
    assert run.main([]) == 1
    out, err = capfd.readouterr()
    assert "run: manifest ..." in out
    assert CHILD_SAYS in out
    assert "result          FAILED at boot" in out
    assert "run: manifest ..." not in err
    assert err.strip().splitlines()[-1] == (
        "run: FAILED at step boot: VMError: no 'CAPOS-READY' on the "
        "console")


def test_interrupted_boot_report_names_the_kept_logs(
        boot_fails: Callable[[BaseException], None], tmp_path: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C while the guest boots: the VM stops (keeping its console
    and audit files under logs/run-*/), run's own stop follows, and the
    report names the kept files; memory was never measured, so there is
    no memory line rather than one of 0 MiB."""
    boot_fails(KeyboardInterrupt())
    assert run.main([]) == 130
    out, err = capfd.readouterr()
    assert "run: interrupted during step boot" in err
    lines = dict(
        (ln[2:18].strip(), ln[18:]) for ln in out.splitlines()
        if ln.startswith("  ") and len(ln) > 18)
    assert lines["result"] == "FAILED at boot"
    [run_dir] = (tmp_path / "logs").glob("run-*")
    console, audit = Path(lines["console log"]), Path(lines["audit log"])
    assert console.parent == run_dir and audit.parent == run_dir
    assert console.read_text() == (
        "capos-boot: t=0.4s start services.init\n")
    assert json.loads(audit.read_text())["service"] == "audit"
    assert "memory" not in lines
    assert "None" not in out


def test_interrupted_boot_json_report_names_the_kept_logs(
        boot_fails: Callable[[BaseException], None],
        capfd: pytest.CaptureFixture[str]) -> None:
    boot_fails(KeyboardInterrupt())
    assert run.main(["--json"]) == 130
    report = json.loads(capfd.readouterr().out)
    facts = report["facts"]
    assert report["failed"] == "boot"
    assert Path(facts["console"]).is_file()
    assert Path(facts["auditLog"]).is_file()
    assert Path(facts["console"]).parent == Path(facts["logs"])
    assert "memory" not in facts


def test_an_acme_server_that_cannot_start_fails_its_own_step(
        boot_fails: Callable[[BaseException], None],
        monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """pebble refusing to start is a step of its own in the report (not
    a traceback after the image step), and nothing boots."""
    boot_fails(AssertionError("the guest must not boot"))

    class NoPebble(FakePebble):
        def __enter__(self) -> FakePebble:
            raise pebble_mod.PebbleError("pebble exited: address in use")

    monkeypatch.setattr(pebble_mod, "Pebble", NoPebble)
    assert run.main(["--json"]) == 1
    out, err = capfd.readouterr()
    report = json.loads(out)
    assert report["failed"] == "pebble"
    assert report["error"] == "PebbleError: pebble exited: address in use"
    assert "Traceback" not in err
    assert "run:   guest" not in err
