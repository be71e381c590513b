"""Renewal, rotation and the certificate store's durability in QEMU.

Pebble (Debian's, on 127.0.0.1) issues certificates whose lifetime is
its ``certificateValidityPeriod``; with a short one the guest's own
renewal policy (half the lifetime, for ten days or less, jittered)
makes a renewal due in bounded time. Nothing in the guest is told to
renew. The guest reaches pebble through QEMU's guestfwd, pebble
validates http-01 through a hostfwd to the guest's port 80, exactly as
``make run`` does (tools/run.py).

- Under a steady load of host TLS handshakes the gateway rotates: none
  fails, and every handshake that starts after the harness saw the
  rotation line gets the new chain (or a newer one). The renewed chain
  passes curl, ``openssl s_client`` and the project's verifier with
  pebble's root; the issuance, renewal and rotations are audited.
- Power cut (QMP ``quit``) while a put is between its synced temporary
  file and its rename (the ``faultStoreCommitDelay`` setting holds it
  there; the store prints ``CAPOS-CERTSTORE renaming`` first), then a
  cut at the first sign of a put with no delay: each time the disk holds
  the old chain or the new one, complete, and the next boot loads it.
- ``system_reset``: the store is intact and the gateway serves the
  stored chain again without an issuance.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from services.certstore.disk import decode
from tests.services.gateway.load import Load, check_rotation, handshake
from tools import run
from tools.pebble import Pebble
from tools.vm import VM, VMError, debugfs, make_data_disk

pytestmark = pytest.mark.vm

NAME = run.NAME
#: Seconds pebble's certificates live in the rotation tests.
LIFETIME = 40
RECORD = "services/certstore/gateway.chain"
SERVING = r"CAPOS-GATEWAY (serving|failed)"
FP = re.compile(r"sha256=([0-9a-f]{64})")


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    return tmp_path / "logs"


def vm_for(peb: Pebble, image: Path, disk: Path, logs: Path,
           **settings: str) -> VM:
    port = peb.ports.acme
    values = {"acmeDirectory": f"https://acme.capos.test:{port}/dir",
              "tlsName": NAME, **settings}
    return VM(image, hostfwd=[(peb.ports.http01, 80)],
              guestfwd=[(run.ACME_GUEST_IP, port, port)],
              append=" ".join(
                  [f"capos.host={run.ACME_GUEST_IP}:acme.capos.test"]
                  + [f"capos.setting={k}={v}" for k, v in values.items()]),
              console_dir=logs, data_disk=disk)


def serving_fp(vm: VM, timeout: float = 180) -> str:
    line = vm.wait_for(SERVING, timeout)
    assert "serving" in line, line
    m = FP.search(line)
    assert m, line
    return m.group(1)


def whole_lines(vm: VM) -> list[str]:
    """The console's lines so far, without a last one still being
    written."""
    text = vm.console()
    return text[:text.rfind("\n") + 1].splitlines()


def wait_nth(vm: VM, pattern: str, n: int, timeout: float) -> str:
    """The ``n``-th console line (1-based) matching ``pattern``; the
    console file keeps every boot of this VM, resets included."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        hits = [ln for ln in whole_lines(vm) if rx.search(ln)]
        if len(hits) >= n:
            return hits[n - 1].strip()
        vm._check_alive()
        if time.monotonic() > deadline:
            raise VMError(f"{len(hits)} of {n} {pattern!r} lines after "
                          f"{timeout:.0f}s")
        time.sleep(0.02)


def ops(records: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [(r["service"], r["capability"], r["operation"], r["outcome"])
            for r in records]


def stored_record(disk: Path) -> list[bytes] | None:
    """The gateway's record as the guest's next mount would see it
    (journal replayed), decoded; ``None`` when there is none. A torn or
    damaged record fails here (CorruptRecordError)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "record"
        debugfs(disk, f"dump /{RECORD} {out}")
        if not out.exists():
            return None
        return decode(out.read_bytes())


def leaf_fp(ders: list[bytes]) -> str:
    return hashlib.sha256(ders[0]).hexdigest()


@pytest.fixture
def short_pebble(logs: Path) -> Iterator[Pebble]:
    with Pebble(logs / "pebble", validity=LIFETIME) as peb:
        yield peb


def test_rotation_under_load_zero_failures_renewed_chain_interop(
        image_dir: Path, short_pebble: Pebble, logs: Path,
        tmp_path: Path) -> None:
    peb = short_pebble
    disk = make_data_disk(tmp_path / "data.img")
    root = logs / "pebble-issuance-root.pem"
    with vm_for(peb, image_dir, disk, logs) as vm:
        first = serving_fp(vm)
        load = Load(vm.port, NAME).start()
        try:
            line = vm.wait_for(r"CAPOS-GATEWAY rotated", 4 * LIFETIME)
            events = [(time.monotonic(), FP.search(line).group(1))]
            deadline = time.monotonic() + 60
            while (load.count_since(events[0][0]) < 100
                   and time.monotonic() < deadline):
                time.sleep(0.05)
        finally:
            results = load.stop()
        # Later rotations (the short lifetime renews again) are allowed
        # as "newer"; the harness did not time them, so none is taken
        # as seen before a handshake.
        later = [FP.search(ln).group(1) for ln in whole_lines(vm)
                 if "CAPOS-GATEWAY rotated" in ln][1:]
        events += [(float("inf"), fp) for fp in later]
        root.write_bytes(peb.issuance_roots()[0])
        served = run.served_chain(vm.port)
        tls = {**run.curl(vm.port, root), **run.s_client(vm.port, root)}
        verified = run.verify_served(vm.port, root)
        records = vm.audit_records()
    counts = check_rotation(results, events)
    print(f"rotation under load: {counts}")
    assert counts["failed"] == 0, [h.error for h in results if h.error][:3]
    assert counts["stale"] == 0
    assert counts["afterRotation"] >= 100
    renewed = events[0][1]
    assert renewed != first
    assert {h.sha256 for h in results} >= {renewed}
    # The chain served now is a renewed one (maybe renewed again since).
    assert leaf_fp(served) != first
    assert tls["httpStatus"] == 200
    assert tls["curlVerify"] == 0
    assert tls["opensslVerify"] is True
    assert verified["verification"] == "valid"
    # Audit: issuance, the renewal decision and its outcome, rotations.
    got = ops(records)
    assert ("acme", "acmeClient", "order", "ok") in got
    assert ("gateway", "renewer", "schedule", "ok") in got
    assert ("acme", "acmeClient", "renew", "ok") in got
    assert ("gateway", "renewer", "renew", "ok") in got
    rotations = [r["subject"] for r in records
                 if r["operation"] == "rotate"]
    assert ["gateway", renewed] in rotations  # certstore and gateway
    assert sum(1 for r in records if r["operation"] == "rotate"
               and r["service"] == "gateway"
               and r["subject"] == ["gateway", renewed]) == 1
    assert any(r["service"] == "certstore" and r["subject"] == [
        "gateway", renewed] for r in records if r["operation"] == "rotate")


def test_power_cut_during_a_put_leaves_old_or_new_never_torn(
        image_dir: Path, short_pebble: Pebble, logs: Path,
        tmp_path: Path) -> None:
    peb = short_pebble
    disk = make_data_disk(tmp_path / "data.img")
    renaming = r"CAPOS-CERTSTORE renaming handle=gateway"
    # Boot 1: every put waits 8 s before its rename. Cut the power
    # inside the wait of the first renewal's put.
    with vm_for(peb, image_dir, disk, logs,
                faultStoreCommitDelay="8") as vm:
        old = serving_fp(vm)
        line = wait_nth(vm, renaming, 2, 4 * LIFETIME)
        vm.qmp("quit")
    new = FP.search(line).group(1)
    assert new != old
    listing = debugfs(disk, "ls /services/certstore")
    assert ".gateway.chain.tmp-" in listing  # the put was under way
    record = stored_record(disk)
    assert record is not None and leaf_fp(record) == old
    x509.load_der_x509_certificate(record[0])
    # Boot 2, no delay: the store discards the unfinished write, loads
    # the old chain; cut again as soon as a put says it renames.
    with vm_for(peb, image_dir, disk, logs) as vm:
        line = vm.wait_for(renaming, 4 * LIFETIME)
        vm.qmp("quit")
        boot2 = vm.audit_records()
    second = FP.search(line).group(1)
    store2 = [r for r in boot2 if r["service"] == "certstore"]
    assert ("certstore", "certStore", "recover", "ok") in ops(store2)
    assert any(r["operation"] == "load" and r["outcome"] == "ok"
               and r["subject"] == ["gateway", old] for r in store2)
    record = stored_record(disk)
    assert record is not None
    assert leaf_fp(record) in (old, second)
    for der in record:
        x509.load_der_x509_certificate(der)
    # Boot 3 loads exactly what the disk holds, complete.
    with vm_for(peb, image_dir, disk, logs) as vm:
        vm.wait_for(SERVING, 180)
        boot3 = vm.audit_records()
    loads = [r for r in boot3 if r["service"] == "certstore"
             and r["operation"] == "load"]
    assert [(r["outcome"], r["subject"]) for r in loads] == [
        ("ok", ["gateway", leaf_fp(record)])]


def test_system_reset_keeps_the_store_and_serves_it_without_issuance(
        image_dir: Path, pebble: Pebble, logs: Path,
        tmp_path: Path) -> None:
    disk = make_data_disk(tmp_path / "data.img")
    with vm_for(pebble, image_dir, disk, logs) as vm:
        first = serving_fp(vm)
        before = handshake(vm.port, NAME)
        # QEMU runs with -no-reboot (a guest reboot ends the run); let
        # this reset reset instead.
        vm.qmp("set-action", reboot="reset")
        vm.qmp("system_reset")
        wait_nth(vm, r"CAPOS-READY", 2, 180)
        line = wait_nth(vm, SERVING, 2, 180)
        after = handshake(vm.port, NAME)
        records = vm.audit_records()
    assert before.sha256 == first
    assert "source=store" in line, line
    assert FP.search(line).group(1) == first
    assert after.error == "" and after.sha256 == first
    got = ops(records)
    assert got.count(("acme", "acmeClient", "order", "ok")) == 1
    # The ACME stack was loaded once, for the first boot's order: the
    # reset boot served its stored chain without it.
    loads = [i for i, op in enumerate(got)
             if op == ("acme", "acmeClient", "load", "ok")]
    assert len(loads) == 1
    assert loads[0] < got.index(("acme", "acmeClient", "order", "ok"))
    assert ("gateway", "gateway", "reuse", "ok") in got
    reuse = next(r for r in records if r["operation"] == "reuse")
    assert reuse["subject"] == ["gateway", first]
    assert reuse["detail"] == "key loaded"
    loads = [r for r in records if r["service"] == "certstore"
             and r["operation"] == "load"]
    assert [(r["outcome"], r["subject"]) for r in loads] == [
        ("ok", ["gateway", first])]
    record = stored_record(disk)
    assert record is not None and leaf_fp(record) == first
    # One account for both boots: registered once, and its key kept on
    # the disk beside the TLS key for the next registration to find.
    registers = [(r["outcome"], r["detail"]) for r in records
                 if r["operation"] == "register"]
    assert registers == [("ok", "new account")]
    assert [(r["service"], r["detail"]) for r in records
            if r["operation"] == "accountKey"] == [("gateway", "created")]
    assert "Mode:  0600" in debugfs(
        disk, "stat /services/gateway/acme-account-key.pem")
