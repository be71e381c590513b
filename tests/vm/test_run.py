"""``make run``'s whole path in QEMU: manifest, image, pebble, boot,
ACME issuance in the guest over virtio-net, TLS from the host with curl
and openssl, and the served chain verified by the project's verifier."""

from __future__ import annotations

import json

import pytest

from tests.vm.conftest import reaped
from tools import run

pytestmark = pytest.mark.vm


def test_make_run_path(capsys) -> None:
    code = run.main(["--json"])
    report = json.loads(capsys.readouterr().out)  # the report alone
    assert report["failed"] == "", report["error"]
    assert code == 0
    facts = report["facts"]
    assert facts["httpStatus"] == 200
    assert facts["curlVerify"] == 0
    assert facts["opensslVerify"] is True
    assert facts["tlsVersion"] in ("TLSv1.2", "TLSv1.3")
    assert facts["verification"] == "valid"
    assert facts["manifest"]["anchors"] == 172
    assert facts["manifest"]["ctLogs"] == 56
    assert facts["issuanceSeconds"] > 0
    ops = set(facts["audit"]["operations"])
    assert {"acme.register:ok", "acme.order:ok", "certstore.put:ok",
            "gateway.rotate:ok"} <= ops
    assert set(report["timings"]) == {
        "manifest", "image", "pebble", "boot", "issue", "tls", "verify"}


def test_keep_serves_until_interrupted_then_tears_down() -> None:
    """``--keep``: the VM serves a client of the user's own until Ctrl-C,
    then the run ends cleanly and leaves no QEMU behind."""
    import re
    import signal
    import subprocess
    import sys

    seen = []
    with reaped(subprocess.Popen(
            [sys.executable, "-m", "tools.run", "--keep"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=run.REPO)) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if "VM serving" in line:
                break
        serving = "".join(seen)
        m = re.search(r"https://(\S+):(\d+)/ \(curl --resolve \S+ "
                      r"--cacert (\S+)\)", serving)
        assert m, serving[-2000:]
        name, port, root = m.group(1), m.group(2), m.group(3)
        curl = subprocess.run(
            ["curl", "-sS", "--max-time", "30", "--cacert", root,
             "--resolve", f"{name}:{port}:127.0.0.1", "-o", "/dev/null",
             "-w", "%{http_code}", f"https://{name}:{port}/"],
            capture_output=True, text=True, timeout=60)
        assert curl.stdout == "200", curl.stderr
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest[-2000:]
    assert "result          ok" in rest
    # Nothing left listening on the forwarded port: QEMU is gone.
    probe = subprocess.run(["curl", "-sS", "--max-time", "5", "-k",
                            f"https://127.0.0.1:{port}/"],
                           capture_output=True, text=True)
    assert probe.returncode == 7, probe.stderr  # couldn't connect


def _children(pid: int) -> dict[int, str]:
    """Direct children of ``pid``: their pids and command names."""
    from pathlib import Path

    out = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in text.splitlines()
                      if ":\t" in line)
        if int(fields.get("PPid", "0")) == pid:
            out[int(status.parent.name)] = fields["Name"].strip()
    return out


def test_sigterm_during_boot_stops_everything_and_names_the_step() -> None:
    """A killed run (timeout, CI cancel, plain ``kill``) leaves nothing
    running: QEMU and pebble stop, and the report names the step."""
    import os
    import signal
    import subprocess
    import sys
    import time

    with reaped(subprocess.Popen(
            [sys.executable, "-m", "tools.run"], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, cwd=run.REPO)) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "run:   guest" in line:  # QEMU is up, the guest booting
                break
        kids = _children(proc.pid)
        assert any(n.startswith("qemu") for n in kids.values()), kids
        assert any(n.startswith("pebble") for n in kids.values()), kids
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, rest[-2000:]
    assert "interrupted during step boot" in rest
    assert "FAILED at boot" in rest
    assert "Traceback" not in rest
    # The report names the console and audit logs the stopped VM kept,
    # and has no memory line: nothing was measured.
    import re
    from pathlib import Path

    for label in ("console log", "audit log"):
        m = re.search(rf"^  {label} +(\S+)$", rest, re.M)
        assert m, rest[-2000:]
        assert Path(m.group(1)).is_file(), m.group(0)
    assert "  memory " not in rest
    assert "None" not in rest
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
            os.path.exists(f"/proc/{pid}") for pid in kids):
        time.sleep(0.1)
    assert not [pid for pid in kids if os.path.exists(f"/proc/{pid}")]
