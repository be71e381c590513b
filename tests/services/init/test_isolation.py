"""capos-init --isolate on the host: what was not granted cannot be
reached (DESIGN.md section 2, "What Linux can enforce, it should").

capos-init runs as a process, as root, with a signed manifest whose
probe services (tests/services/init/probe_service.py) try to reach the
network, each other's state directories, each other's processes and the
audit port, and report what they saw as audit records. The assertions
are on the errnos and ids recorded from inside the services.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootmanifest import build, graph, sign
from services.init import system
from tests.services.init import runner

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="isolation needs root (setuid, unshare)")

PROBE = "tests.services.init.probe_service"
AUDIT_GRANT = {"name": "audit", "provider": "audit", "cap": "auditLog"}
GRAPH = {"services": [
    {"name": "audit", "module": "services.audit.service",
     "exports": ["auditLog"], "state": True, "devices": ["capos.audit"]},
    {"name": "nonet", "module": PROBE, "grants": [AUDIT_GRANT],
     "state": True},
    {"name": "net", "module": PROBE, "grants": [AUDIT_GRANT],
     "network": True, "state": True, "devices": ["capos.probe"]},
]}


def _sign(d: Path, services_file: Path | None = None,
          anchors: tuple[build.ExtraAnchor, ...] = ()) -> tuple[Path, Path]:
    key = sign.load_or_create_key(d / "signing.key")
    kwargs: dict[str, Any] = {"extra_anchors": anchors}
    if services_file is not None:
        kwargs["services_file"] = services_file
    now = int(time.time())
    raw = build.assemble(build.read_inputs(**kwargs), build.BuildParams(
        version=1, issued_at=now - 60, expires_at=now + 86400,
        signers=(sign.key_id(key.public_key()),)))
    manifest = d / "manifest.bin"
    manifest.write_bytes(sign.sign(raw, [key]))
    pub = d / "pub.hex"
    pub.write_text(sign.raw_public(key.public_key()).hex())
    return manifest, pub


@pytest.fixture
def data() -> Iterator[Path]:
    """A data directory the service uids can walk into (pytest's own
    temporary directories are 0700, so root's alone)."""
    d = Path(tempfile.mkdtemp(prefix="capos-isolation-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d)


def boot(manifest: Path, pub: Path, *args: str,
         env: dict[str, str] | None = None) -> list[str]:
    """Run capos-init until it is ready (or fails), then stop it."""
    lines = runner.until_ready("--manifest", str(manifest), "--pubkey",
                               str(pub), "--isolate", *args, env=env)
    assert any(x.startswith("CAPOS-READY") for x in lines), "\n".join(lines)
    assert any(x.startswith("CAPOS-STAGE services-forked isolated=yes ")
               for x in lines), lines
    return lines


def uids(doc: dict[str, Any]) -> dict[str, int]:
    order = graph.validate(graph.parse(json.dumps(doc).encode()),
                           anchor_names=["acme-server-root"])
    return {s.name: system.service_uid(i) for i, s in enumerate(order)}


def probes(log: Path) -> dict[str, dict[str, Any]]:
    records = [json.loads(x) for x in log.read_text().splitlines() if x]
    return {r["service"]: json.loads(r["detail"]) for r in records
            if r["operation"] == "probe"}


@pytest.fixture
def probed(data: Path) -> dict[str, Any]:
    """Boot the probe graph isolated; what each probe saw, and where."""
    (data / "graph.json").write_text(json.dumps(GRAPH))
    manifest, pub = _sign(data, data / "graph.json")
    ports = data / "ports"
    ports.mkdir()
    port, probe_dev = ports / "capos.audit", ports / "capos.probe"
    port.touch()
    probe_dev.touch()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        boot(manifest, pub, "--data", str(data / "disk"),
             "--setting", f"probePort={server.getsockname()[1]}",
             "--setting", f"probeData={data / 'disk'}",
             "--setting", "probeDirs=audit,nonet,net",
             env={"CAPOS_DEVICE_MAP":
                  f"capos.audit={port},capos.probe={probe_dev}"})
    finally:
        server.close()
    log = data / "disk" / "services" / "audit" / "audit.jsonl"
    return {"seen": probes(log), "log": log, "port": port,
            "probe_dev": probe_dev, "uids": uids(GRAPH),
            "disk": data / "disk"}


def test_services_collect_and_share_init_s_frozen_imports(probed) -> None:
    """capos-init imports with its collector off and freezes what it
    imported before forking: each service's collections are made by its
    event loop, and the imported objects stay frozen (shared, never
    walked)."""
    for name, seen in probed["seen"].items():
        # Inside the service's event loop the automatic collector is
        # off: the loop collects, on its own thread (_runtime.loop).
        assert seen["gc"]["enabled"] is False, name
        assert seen["gc"]["frozen"] > 10_000, (name, seen["gc"])


def test_each_service_has_its_own_uid_and_no_groups(probed) -> None:
    seen, want = probed["seen"], probed["uids"]
    assert set(seen) == {"nonet", "net"}
    for name in ("nonet", "net"):
        uid = want[name]
        assert seen[name]["uid"] == [uid, uid, uid]
        assert seen[name]["gid"] == [uid, uid, uid]
        assert seen[name]["groups"] == []
    assert len(set(want.values())) == 3


def test_network_only_with_a_grant(probed) -> None:
    seen = probed["seen"]
    # An empty network namespace: not even loopback is up.
    assert seen["nonet"]["connect"] == errno.ENETUNREACH
    assert seen["net"]["connect"] == 0


def test_state_dirs_are_private(probed) -> None:
    seen, want = probed["seen"], probed["uids"]
    assert seen["nonet"]["dirs"] == {
        "audit": errno.EACCES, "nonet": 0, "net": errno.EACCES}
    assert seen["net"]["dirs"] == {
        "audit": errno.EACCES, "nonet": errno.EACCES, "net": 0}
    assert seen["nonet"]["ownDir"] == 0
    assert seen["net"]["ownDir"] == 0
    for name, uid in want.items():
        st = (probed["disk"] / "services" / name).stat()
        assert stat.S_IMODE(st.st_mode) == 0o700
        assert (st.st_uid, st.st_gid) == (uid, uid)
    log = probed["log"].stat()
    assert log.st_uid == want["audit"]
    assert stat.S_IMODE(log.st_mode) == 0o600


def test_no_service_can_signal_another_or_init(probed) -> None:
    seen, want = probed["seen"], probed["uids"]
    for name in ("nonet", "net"):
        others = {str(uid) for n, uid in want.items() if n != name}
        assert seen[name]["kill"] == {
            "init": errno.EPERM, **dict.fromkeys(others, errno.EPERM)}


def test_a_port_reaches_only_the_service_granted_it(probed) -> None:
    seen = probed["seen"]
    port, probe_dev = str(probed["port"]), str(probed["probe_dev"])
    assert probe_dev in seen["net"]["fds"]
    assert probe_dev not in seen["nonet"]["fds"]
    assert port not in seen["net"]["fds"]
    assert port not in seen["nonet"]["fds"]
    # The audit service had the port: every record went out on it too,
    # the same bytes as its log in its state directory.
    on_port = probed["port"].read_text()
    assert on_port == probed["log"].read_text()
    assert set(probes(probed["port"])) == {"nonet", "net"}


def test_the_shipped_graph_boots_isolated(data: Path) -> None:
    """The real manifest under --isolate: every service comes up, the
    gateway on init's sockets, each stateful service in its own dir."""
    from tests.services.init.test_main import _root_der

    manifest, pub = _sign(data, anchors=(
        build.ExtraAnchor("acme-server-root", _root_der()),))
    port = data / "capos.audit"
    port.touch()
    lines = boot(manifest, pub, "--data", str(data / "disk"),
                 "--setting", "acmeDirectory=https://127.0.0.1:1/dir",
                 env={"CAPOS_LISTEN_MAP": "80=0,443=0,8080=0,8443=0",
                      "CAPOS_DEVICE_MAP": f"capos.audit={port}"})
    ready = next(x for x in lines if x.startswith("CAPOS-READY"))
    want = uids(json.loads(build.SERVICES_FILE.read_text()))
    # Every service of the shipped graph, in its dependency order.
    assert ready.split()[1] == "services=" + ",".join(want)
    assert {"audit", "trust", "verifier", "ca", "ocsp", "gateway"} <= set(
        want)
    for name in ("audit", "certstore"):
        st = (data / "disk" / "services" / name).stat()
        assert stat.S_IMODE(st.st_mode) == 0o700
        assert st.st_uid == want[name]
    log = data / "disk" / "services" / "audit" / "audit.jsonl"
    assert log.stat().st_uid == want["audit"]
