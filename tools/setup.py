"""Install what the project needs on a fresh Debian bookworm machine.

Run by ``make run`` and ``make test`` before anything else; standard
library only, since it creates the virtualenv. It is idempotent and fast
when everything is present:

- Debian packages (apt-get, as root): only the ones missing are installed;
- the host virtualenv ``.venv`` from ``requirements.txt``, rebuilt only
  when that file changes.

Exit status: 0 ready, 1 an install failed (the failing command and its
output tail are printed).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
STAMP = VENV / ".requirements.sha256"

#: Debian packages, and the command each must provide.
DEBIAN = {
    "qemu-system-x86": "qemu-system-x86_64",
    "qemu-utils": "qemu-img",
    "pebble": "pebble",
    "certbot": "certbot",
    "lego": "lego",
    "busybox-static": "busybox",
    "cpio": "cpio",
    "zstd": "zstd",
    "openssl": "openssl",
    "curl": "curl",
    "xz-utils": "xz",
    "e2fsprogs": "mkfs.ext4",
    "binutils": "readelf",  # image build: strip, and the linkage check
}


def step(msg: str) -> None:
    print(f"setup: {msg}", flush=True)


def run(cmd: list[str], **kw: object) -> None:
    step("$ " + " ".join(cmd))
    proc = subprocess.run(cmd, text=True, capture_output=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-20:]
        print("\n".join(tail), file=sys.stderr)
        raise SystemExit(
            f"setup: failed (exit {proc.returncode}): {' '.join(cmd)}"
        )


def debian() -> None:
    missing = [p for p, cmd in DEBIAN.items() if shutil.which(cmd) is None]
    if not missing:
        step("Debian packages present")
        return
    if os.geteuid() != 0:
        raise SystemExit(
            "setup: these Debian packages are missing and installing them "
            f"needs root: {' '.join(missing)}"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    step(f"installing Debian packages: {' '.join(missing)}")
    run(["apt-get", "update", "-q"], env=env)
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
         *missing], env=env)


def virtualenv() -> None:
    req = (ROOT / "requirements.txt").read_bytes()
    want = hashlib.sha256(req).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == want:
        step(".venv up to date")
        return
    if not (VENV / "bin" / "python").exists():
        step("creating .venv")
        venv.EnvBuilder(with_pip=True).create(VENV)
    step("installing Python packages from requirements.txt")
    run([str(VENV / "bin" / "python"), "-m", "pip", "install", "-q",
         "--disable-pip-version-check", "-r",
         str(ROOT / "requirements.txt")])
    STAMP.write_text(want + "\n")


def main() -> int:
    debian()
    virtualenv()
    step("ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
