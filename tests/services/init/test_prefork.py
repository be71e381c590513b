"""capos-init's pre-fork import set leaves Debian's OpenSSL out
(``services.init.prefork``): neither ``ssl`` nor ``_hashlib`` is
imported, neither library is mapped, hashing gives the same digests
through CPython's built-ins, and once the hold is released (as spawn
does before it forks) ``ssl`` imports and works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

from tools.bench_imports import PREFORK_IMPORTS

REPO = Path(__file__).resolve().parents[3]

#: After the pre-fork imports: what of Debian's OpenSSL is loaded, what
#: hashing and asyncio give, then ``ssl`` once released.
REPORT = """\
import json, sys
maps = open("/proc/self/maps").read().splitlines()
out = {
    "modules": sorted(m for m in ("ssl", "_ssl", "_hashlib")
                      if sys.modules.get(m) is not None),
    "libraries": sorted({ln.rsplit("/", 1)[-1] for ln in maps
                         if "/libssl.so" in ln or "/libcrypto.so" in ln}),
}
import asyncio, hashlib, hmac
out["sha256"] = hashlib.sha256(b"abc").hexdigest()
out["hmac"] = hmac.new(b"key", b"msg", "sha256").hexdigest()
out["asyncio_without_ssl"] = asyncio.base_events.ssl is None
prefork.release()
import ssl
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
out["ssl_after_release"] = ctx.verify_mode == ssl.CERT_REQUIRED
print(json.dumps(out))
"""


def probe(script: str) -> Any:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), sysconfig.get_paths()["purelib"]])
    env["CAPOS_SCHEMA_DIR"] = str(REPO / "schema")
    proc = subprocess.run([sys.executable, "-S", "-c", script], cwd=REPO,
                          env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_prefork_set_loads_no_debian_openssl() -> None:
    out = json.loads(probe(PREFORK_IMPORTS + REPORT).stdout)
    assert out["modules"] == []
    assert out["libraries"] == []
    # SHA-256("abc") from FIPS 180-2, and HMAC-SHA256 as `openssl dgst
    # -sha256 -hmac key` gives it, computed here by the built-ins.
    assert out["sha256"] == ("ba7816bf8f01cfea414140de5dae2223"
                             "b00361a396177a9cb410ff61f20015ad")
    assert out["hmac"] == ("2d93cbc1be167bcb1637a4a23cbff01a"
                           "7878f0c50ee833954ea5221bb1b8c628")
    assert out["asyncio_without_ssl"] is True
    assert out["ssl_after_release"] is True


def test_control_without_the_hold_loads_it() -> None:
    """The probe sees the library when it is there: without the hold
    the same imports load ``_ssl`` and map libssl."""
    script = (PREFORK_IMPORTS.replace("prefork.hold()\n", "")
              + REPORT)
    out = json.loads(probe(script).stdout)
    assert {"ssl", "_ssl", "_hashlib"} <= set(out["modules"])
    assert any(lib.startswith("libssl.so") for lib in out["libraries"])
    assert out["asyncio_without_ssl"] is False


def test_hold_after_the_import_is_refused() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-S", "-c", "import ssl\n"
         "from services.init import prefork\nprefork.hold()"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "ssl is already imported" in proc.stderr
