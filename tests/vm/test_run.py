"""``make run``'s whole path in QEMU: manifest, image, pebble, boot,
ACME issuance in the guest over virtio-net, TLS from the host with curl
and openssl, and the served chain verified by the project's verifier."""

from __future__ import annotations

import json

import pytest

from tools import run

pytestmark = pytest.mark.vm


def test_make_run_path(capsys) -> None:
    code = run.main(["--json"])
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{"):])
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
        "manifest", "image", "boot", "issue", "tls", "verify"}
