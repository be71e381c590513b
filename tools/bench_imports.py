"""capos-init's pre-fork import figure for ``make bench`` (issue #2).

- ``init_prefork_imports``: CPU a fresh ``python3 -S`` interpreter spends
  importing what capos-init imports before it forks the services: its
  own modules (``services.init.__main__``), the manifest check
  (``bootmanifest.sign`` and the manifest schema), every service
  module ``bootmanifest/services.json`` names, through the same
  ``host.load_build`` capos-init's spawn uses, and the modules spawn
  adds (``services.init.system.PREFORK_EXTRA``). The graph is read
  without ``bootmanifest.build`` (the manifest builder, with its root
  and log list parsers), which capos-init never imports: the probe
  counted it until it was left out (32.1M instructions, 4.3% of the
  set, by callgrind). Median of :data:`N` interpreters, after one that
  writes the bytecode caches (the image ships compiled ``.pyc``). The
  host figure is a proxy: under TCG the guest spends about 15 times as
  long.

Nothing here is asserted.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
N = 9

#: capos-init's pre-fork imports, as a script for a fresh ``python3
#: -S`` (also the tests' probe of what that set holds).
PREFORK_IMPORTS = """\
import gc
gc.disable()
from services.init import prefork
prefork.hold()
import services.init.__main__
from pathlib import Path
from bootmanifest import graph, sign
from services._runtime import host, schema
schema.manifest()
for s in graph.parse(
        Path(graph.__file__).with_name("services.json").read_bytes()):
    host.load_build(s.module)
for name in services.init.system.PREFORK_EXTRA:
    __import__(name)
"""

#: Run in the fresh interpreter; prints the CPU seconds it spent.
_PROBE = ("import time\nc0 = time.process_time()\n" + PREFORK_IMPORTS
          + "print(time.process_time() - c0)\n")


def prefork_import_seconds() -> list[float]:
    """CPU seconds of :data:`N` fresh interpreters (after a warm-up)."""
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), sysconfig.get_paths()["purelib"]])
    env["CAPOS_SCHEMA_DIR"] = str(REPO / "schema")
    out = []
    for _ in range(N + 1):
        proc = subprocess.run(
            [sys.executable, "-S", "-c", _PROBE], cwd=REPO, env=env,
            capture_output=True, text=True, timeout=120, check=True)
        out.append(float(proc.stdout.split()[-1]))
    return out[1:]


def figures() -> None:
    from tools.bench import line

    line("init_prefork_imports",
         statistics.median(prefork_import_seconds()) * 1000, "ms")


if __name__ == "__main__":
    figures()
