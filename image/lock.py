"""Regenerate image/image.lock.json: every image input pinned.

Re-lock command (documented): ``.venv/bin/python -m image.lock``.
Debian packages are resolved with ``apt-cache show`` against the
configured bookworm mirror; wheels with ``pip install --dry-run
--report`` for cp311 manylinux x86_64 (manylinux_2_28 must be listed,
see DESIGN 4a).
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

LOCK = Path(__file__).with_name("image.lock.json")
KERNEL = "linux-image-6.1.0-57-cloud-amd64"
DEBS = [
    KERNEL, "busybox-static", "python3.11-minimal",
    "libpython3.11-minimal", "libpython3.11-stdlib", "libc6", "libssl3",
    "libffi8", "zlib1g", "libexpat1", "libbz2-1.0", "liblzma5",
    "libsqlite3-0", "libcrypt1", "libuuid1", "libstdc++6", "libgcc-s1",
]
WHEELS = ["cryptography==50.0.2", "pyOpenSSL==26.4.0", "pycapnp==2.2.4",
          "acme==5.9.0", "josepy==2.2.0",
          "publicsuffixlist==1.1.2.20261023"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux2014_x86_64",
             "manylinux_2_17_x86_64"]
SOURCE_DATE_EPOCH = 1767225600  # 2026-01-01T00:00:00Z
ZSTD = {"name": "zstd", "level": 19}


def _deb(pkg: str) -> dict[str, str]:
    out = subprocess.run(["apt-cache", "show", "--no-all-versions", pkg],
                         check=True, capture_output=True, text=True).stdout
    fields: dict[str, str] = {}
    for line in out.split("\n\n")[0].splitlines():
        if ":" in line and not line.startswith(" "):
            k, v = line.split(":", 1)
            fields[k] = v.strip()
    # --print-uris knows which archive (main or security) serves the file.
    uri = subprocess.run(["apt-get", "download", "--print-uris",
                          f"{pkg}={fields['Version']}"], check=True,
                         capture_output=True, text=True).stdout.split()
    url = uri[0].strip("'")
    sha = uri[3].removeprefix("SHA256:")
    if sha != fields["SHA256"]:
        raise SystemExit(f"{pkg}: apt-cache and apt-get disagree on sha256")
    return {"name": pkg, "version": fields["Version"], "sha256": sha,
            "url": url, "file": fields["Filename"].rsplit("/", 1)[1]}


def _wheels() -> list[dict[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "r.json"
        # --isolated: ignore this machine's pip configuration, whose local
        # indexes would put file:// URLs in the lock that no other
        # machine can fetch. The lock names PyPI only.
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "-q",
               "--isolated", "--index-url", "https://pypi.org/simple/",
               "--ignore-installed", "--only-binary=:all:",
               "--python-version", "3.11", "--implementation", "cp",
               "--abi", "cp311", "--target", tmp, "--report", str(report)]
        for p in PLATFORMS:
            cmd += ["--platform", p]
        subprocess.run(cmd + WHEELS, check=True)
        data = json.loads(report.read_text())
    out = []
    for item in data["install"]:
        info = item["download_info"]
        url = info["url"]
        out.append({"name": item["metadata"]["name"],
                    "version": item["metadata"]["version"],
                    "sha256": info["archive_info"]["hashes"]["sha256"],
                    "url": url, "file": url.rsplit("/", 1)[1]})
    return sorted(out, key=lambda w: w["name"].lower())


def current_kernel() -> str:
    """The cloud kernel package the mirror serves now: what Debian's
    ``linux-image-cloud-amd64`` metapackage depends on. Its ABI number is
    in the name, so a kernel security update changes the name itself."""
    out = subprocess.run(["apt-cache", "depends", "--important",
                          "linux-image-cloud-amd64"], check=True,
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        key, _, dep = line.strip().partition(":")
        dep = dep.strip()
        if key == "Depends" and dep.startswith("linux-image-") and (
                dep.endswith("-cloud-amd64")):
            return dep
    raise SystemExit("linux-image-cloud-amd64 names no cloud kernel")


def resolve(kernel: str = KERNEL) -> dict[str, object]:
    """Every input as the mirror and PyPI serve it now."""
    zv = subprocess.run(["zstd", "--version"], capture_output=True,
                        text=True).stdout.strip()
    return {"source_date_epoch": SOURCE_DATE_EPOCH,
            "kernel_package": kernel,
            "compressor": dict(ZSTD, version=zv),
            "debs": [_deb(p) for p in [kernel, *DEBS[1:]]],
            "wheels": _wheels()}


def write(lock: dict[str, object], path: Path = LOCK) -> Path:
    path.write_text(json.dumps(lock, indent=1, sort_keys=True) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m image.lock",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=LOCK,
                    help="where to write the lock (default: the repo's)")
    ap.add_argument("--kernel", default=KERNEL,
                    help="kernel package (default %(default)s; 'current' "
                    "takes what linux-image-cloud-amd64 depends on)")
    a = ap.parse_args(argv)
    kernel = current_kernel() if a.kernel == "current" else a.kernel
    print(f"wrote {write(resolve(kernel), a.out)}")


if __name__ == "__main__":
    main()
