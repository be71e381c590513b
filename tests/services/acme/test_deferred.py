"""The acme service's client is made on its first call: capos-init's
pre-fork imports leave the ACME stack out, the first call loads it once
(one audit record) and every call answers as the client itself does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import capnp
import pytest

from services._runtime.audit import MemoryAuditSink
from services._runtime.boundary import parse_remote
from services._runtime.clock import SystemClock
from services._runtime.host import ServiceContext
from services._runtime.schema import pki
from services.acme import service
from services.acme.deferred_impl import DeferredAcmeClientImpl
from services.x509.model import parse_certificate
from services.x509.trust import Anchor, TrustStoreCore
from services.x509.truststore_impl import TrustStoreImpl
from tests.services.acme.harness import client_for, pebble_anchor
from tests.services.x509.rpc import run, serve
from tools.bench_imports import PREFORK_IMPORTS
from tools.pebble import Pebble

REPO = Path(__file__).resolve().parents[3]

#: The top-level packages of the ACME stack (the acme library and what
#: it pulls in that no other service imports).
STACK = ("acme", "josepy", "requests", "urllib3", "charset_normalizer")

#: capos-init's pre-fork import set (tools/bench_imports.py's), then
#: any extra modules; prints which of the given packages it loaded.
PROBE = PREFORK_IMPORTS + """\
import sys
prefork.release()  # as spawn does before it forks
for extra in sys.argv[2:]:
    __import__(extra)
import json
print(json.dumps(sorted(m for m in sys.modules
                        if m.split(".")[0] in sys.argv[1].split(","))))
"""


def prefork_modules(*extra: str) -> list[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), sysconfig.get_paths()["purelib"]])
    env["CAPOS_SCHEMA_DIR"] = str(REPO / "schema")
    proc = subprocess.run(
        [sys.executable, "-S", "-c", PROBE, ",".join(STACK), *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout))


def test_prefork_imports_leave_the_acme_stack_out() -> None:
    assert prefork_modules() == []
    # Control: the probe sees the stack once the client module is in.
    loaded = {m.split(".")[0]
              for m in prefork_modules("services.acme.client_impl")}
    assert loaded == set(STACK)


def context(grants: dict[str, Any], audit: MemoryAuditSink,
            **settings: str) -> ServiceContext:
    return ServiceContext(name="acme", grants=grants, inputs={},
                          settings=settings, clock=SystemClock(),
                          audit=audit)


def store_of(ders: list[bytes]) -> TrustStoreImpl:
    return TrustStoreImpl(TrustStoreCore(
        Anchor(parse_certificate(d), "pebble") for d in ders))


def loads(audit: MemoryAuditSink) -> list[tuple[str, str, str]]:
    return [(e.capability, e.outcome, e.detail) for e in audit.events
            if e.operation == "load"]


def test_first_call_loads_the_client_once_and_answers_as_it(
        pebble: Pebble) -> None:
    audit = MemoryAuditSink()

    async def go() -> dict[str, Any]:
        async with serve(store_of(pebble_anchor(pebble)),
                         pki().TrustStore) as trust:
            exports = await service.build(context(
                {"trust": trust}, audit,
                acmeDirectory=pebble.local_directory_url))
        deferred = exports["acmeClient"]
        before = deferred.loaded
        async with serve(deferred, pki().AcmeClient) as acme:
            first = await acme.directory()
            second = await acme.directory()
        async with serve(client_for(pebble, MemoryAuditSink(),
                                    SystemClock()),
                         pki().AcmeClient) as plain:
            direct = await plain.directory()
        return {"before": before, "after": deferred.loaded,
                "urls": [str(d.url) for d in (first, second, direct)],
                "tos": [str(d.meta.termsOfService)
                        for d in (first, direct)]}

    got = run(go)
    assert got["before"] is False and got["after"] is True
    assert got["urls"] == [pebble.local_directory_url] * 3
    assert got["tos"][0] == got["tos"][1]
    [(cap, outcome, detail)] = loads(audit)
    assert (cap, outcome) == ("acmeClient", "ok")
    assert detail.startswith("ACME stack loaded in ")


def test_a_failed_make_reaches_the_caller_and_is_tried_again(
        pebble: Pebble) -> None:
    audit = MemoryAuditSink()
    tries: list[int] = []

    def make() -> Any:
        tries.append(1)
        if len(tries) == 1:
            raise ValueError("no memory for the ACME stack")
        return client_for(pebble, audit, SystemClock())

    async def go() -> tuple[tuple[str, str], str]:
        deferred = DeferredAcmeClientImpl(make, SystemClock(), audit)
        async with serve(deferred, pki().AcmeClient) as acme:
            try:
                await acme.directory()
            except capnp.KjException as err:
                failed = parse_remote(err)
            else:
                raise AssertionError("the failed make went unnoticed")
            ok = str((await acme.directory()).url)
        return failed, ok

    failed, url = run(go)
    assert "no memory for the ACME stack" in failed[1]
    assert url == pebble.local_directory_url
    assert len(tries) == 2
    assert [o for _, o, _ in loads(audit)] == ["ok"]


@pytest.mark.parametrize(("anchors", "settings", "why"), [
    (False, {"acmeDirectory": "https://127.0.0.1:9/dir"},
     "the trust grant holds no anchors"),
    (True, {}, "setting acmeDirectory is missing"),
])
def test_build_refuses_what_it_can_check_without_the_stack(
        pebble: Pebble, anchors: bool, settings: dict[str, str],
        why: str) -> None:
    ders = pebble_anchor(pebble) if anchors else []

    async def go() -> str:
        async with serve(store_of(ders), pki().TrustStore) as trust:
            try:
                await service.build(context({"trust": trust},
                                            MemoryAuditSink(), **settings))
            except ValueError as err:
                return str(err)
        raise AssertionError("build accepted it")

    assert run(go).startswith(why)
