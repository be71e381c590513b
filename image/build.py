"""Build the capOS boot image: uncompressed PVH vmlinux + initramfs.

``python -m image.build [--manifest PATH --pubkey PATH] --out build/image``

A pure ``plan()`` turns the lock file and the repo into a list of
inputs and an inputs hash; ``execute()`` fetches (sha256-verified,
cached in ~/.cache/capos/dl), unpacks debs with ``dpkg-deb -x``,
extracts vmlinux, assembles the root, compiles ``.pyc`` (unchecked-hash)
and packs a reproducible zstd cpio. Re-lock: ``python -m image.lock``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tools._cli import pipe_safe

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LOCK = HERE / "image.lock.json"
GUEST = HERE / "guest"
DL = Path(os.environ.get("CAPOS_DL", Path.home() / ".cache/capos/dl"))
RELOCK = ".venv/bin/python -m image.lock"
MODULES = ["virtio_pci", "virtio_net", "virtio_blk", "virtio_console",
           "virtio-rng"]
BUSYBOX_APPLETS = ["sh", "mount", "insmod", "ip", "mkdir", "cat", "echo",
                   "poweroff", "reboot", "sleep", "ls", "acpid", "ln",
                   "dmesg", "umount", "sync", "date", "ps", "kill"]
DROP_DIRS = {"usr/share/doc", "usr/share/man", "usr/share/locale",
             "usr/share/lintian", "usr/share/info", "usr/share/bug",
             "usr/share/gdb", "usr/share/binfmts", "usr/share/gcc",
             "usr/lib/python3.11/test", "usr/lib/python3.11/idlelib",
             "usr/lib/python3.11/tkinter", "usr/lib/python3.11/ensurepip",
             "usr/lib/python3.11/lib2to3", "usr/lib/python3.11/turtledemo",
             "usr/lib/python3.11/pydoc_data", "usr/lib/x86_64-linux-gnu/gconv",
             "usr/lib/python3.11/unittest", "usr/lib/python3.11/distutils",
             "etc/ld.so.conf.d", "usr/share/python3.11"}
SITE = "usr/lib/python3/dist-packages"
#: Wheel contents no service imports at run time: pycapnp's code
#: generator and its Cython/C++ sources, the acme library's own tests,
#: and type stubs. Each byte here is unpacked by the kernel at every boot
#: (DESIGN 4a), so what is never imported does not ship.
SITE_PRUNE = ("jinja2", "markupsafe", "pycparser", "capnp/templates",
              "capnp/helpers", "capnp/includes", "capnp/_gen.py",
              "acme/_internal/tests")
SITE_PRUNE_SUFFIXES = (".pyx", ".pxd", ".pyi", ".h", ".cpp", ".c")
#: Parts of Debian's standard library no service imports: CPython's own
#: test extensions, terminal and audio modules, and the toys.
STDLIB = "usr/lib/python3.11"
STDLIB_PRUNE = ("turtle.py", "pydoc.py", "antigravity.py", "__hello__.py",
                "__phello__", "curses", "dbm")
DYNLOAD_PRUNE = ("_test", "_ctypes_test", "_xx", "xxlimited", "audioop",
                 "nis.", "ossaudiodev", "readline", "_curses", "_dbm")
#: Shared libraries the packages ship that nothing in the image links:
#: glibc's vector math library (for compilers' OpenMP SIMD loops) and
#: expat's wide-character build. :func:`_check_linkage` proves nothing
#: needs them: each ELF file's ``DT_NEEDED`` must resolve in the image.
LIB_PRUNE = ("lib/x86_64-linux-gnu/libmvec.so.1",
             "usr/lib/x86_64-linux-gnu/libexpatw.so.1",
             "usr/lib/x86_64-linux-gnu/libexpatw.so.1.8.10")
#: Where the image's dynamic loader looks (no ld.so.cache is shipped).
LIB_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64")
#: zstd's window: 1 MiB instead of the 8 MiB that ``-19`` picks. The
#: kernel decompresses the initramfs at every boot, and under TCG each
#: access far back in a large window is a softmmu TLB miss. Measured
#: here on the same root (kernel log, ``Trying to unpack`` to ``Freeing
#: initrd memory``): 0.92-0.98 s with the default window, 0.75-0.83 s
#: with 1 MiB, 0.72-0.78 s with 128 KiB; 17.6, 18.7 and 19.8 MB.
ZSTD_WINDOW_LOG = 20


class BuildError(Exception):
    """A build step failed; ``reason`` says which and why."""

    def __init__(self, reason: str, gone: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.gone = gone  # a pinned input vanished from the mirror


@dataclass(frozen=True)
class Input:
    name: str
    version: str
    sha256: str
    url: str
    file: str
    kind: str  # "deb" | "wheel"


@dataclass(frozen=True)
class Plan:
    inputs: tuple[Input, ...]
    kernel_package: str
    source_date_epoch: int
    zstd_level: int
    # (image path, content), snapshotted at plan time so one plan always
    # builds the same bytes even while the tree is being edited.
    repo_files: tuple[tuple[str, bytes], ...]
    inputs_hash: str


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _tree(src: Path, dest: str) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    if not src.is_dir():
        return out
    for p in sorted(src.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts \
                and p.suffix != ".pyc":
            out.append((f"{dest}/{p.relative_to(src).as_posix()}", p))
    return out


def active_lock() -> Path:
    """The lock builds read: the repository's, unless ``CAPOS_IMAGE_LOCK``
    names another. Only the test suite sets it, after a pinned file was
    found gone (see ``tests/vm/conftest.py``)."""
    return Path(os.environ.get("CAPOS_IMAGE_LOCK") or LOCK)


def plan(manifest: Path | None = None,
         pubkey: Path | None = None, lock_path: Path | None = None) -> Plan:
    """Pure: read the lock and the repo, decide every input."""
    lock_path = lock_path or active_lock()
    lock = json.loads(lock_path.read_text())
    inputs = tuple(
        [Input(kind="deb", **{k: d[k] for k in
                              ("name", "version", "sha256", "url", "file")})
         for d in lock["debs"]] +
        [Input(kind="wheel", **{k: w[k] for k in
                                ("name", "version", "sha256", "url", "file")})
         for w in lock["wheels"]])
    files = _tree(REPO / "services", "opt/capos/services")
    files += _tree(REPO / "schema", "opt/capos/schema")
    # capos-init verifies the manifest with bootmanifest's code; the
    # build-time data (certdata, log list) is already inside the manifest.
    files += [f for f in _tree(REPO / "bootmanifest", "opt/capos/bootmanifest")
              if "/data/" not in f[0] and f[0].endswith(".py")]
    files += _tree(GUEST, "opt/capos/guest")
    if manifest:
        files.append(("opt/capos/manifest.signed", manifest))
    if pubkey:
        files.append(("opt/capos/manifest.pub", pubkey))
    h = hashlib.sha256()
    h.update(lock_path.read_bytes())
    h.update(Path(__file__).read_bytes())
    snap = tuple((dest, src.read_bytes()) for dest, src in files)
    for dest, data in snap:
        h.update(dest.encode() + b"\0" + data + b"\0")
    return Plan(inputs, lock["kernel_package"], lock["source_date_epoch"],
                lock["compressor"]["level"], snap, h.hexdigest())


def _log(msg: str) -> None:
    print(f"[build] {msg}", file=sys.stderr, flush=True)


def fetch(inp: Input) -> Path:
    """Return the cached file for ``inp``, downloading it if needed."""
    DL.mkdir(parents=True, exist_ok=True)
    path = DL / inp.file
    if path.exists() and _sha256(path) == inp.sha256:
        return path
    _log(f"fetch {inp.url}")
    tmp = path.with_suffix(path.suffix + ".part")
    try:
        with urllib.request.urlopen(inp.url, timeout=60) as r, \
                tmp.open("wb") as f:
            shutil.copyfileobj(r, f)
    except urllib.error.HTTPError as e:
        e.close()  # it holds the error response's socket
        tmp.unlink(missing_ok=True)
        if e.code == 404:
            raise BuildError(
                f"pinned file gone from the mirror: {inp.file} "
                f"({inp.name} {inp.version}, {inp.url}); re-lock with "
                f"`{RELOCK}` and review the diff", gone=True) from e
        raise BuildError(f"fetch {inp.url}: HTTP {e.code}") from e
    except (urllib.error.URLError, OSError) as e:
        raise BuildError(f"fetch {inp.url}: {e}") from e
    got = _sha256(tmp)
    if got != inp.sha256:
        tmp.unlink()
        raise BuildError(f"sha256 mismatch for {inp.file}: lock "
                         f"{inp.sha256}, got {got}")
    tmp.replace(path)
    return path


def extract_vmlinux(vmlinuz: Path) -> bytes:
    """Decompress the bzImage payload (like linux's extract-vmlinux).

    The setup header gives the payload's offset and length (boot
    protocol >= 2.08); its magic picks the decompressor. Debian's cloud
    kernel uses lz4 (legacy frame), which needs the ``lz4`` CLI.
    """
    data = vmlinuz.read_bytes()
    setup_sects = data[0x1F1] or 4
    off = (setup_sects + 1) * 512 + int.from_bytes(data[0x248:0x24C],
                                                   "little")
    length = int.from_bytes(data[0x24C:0x250], "little")
    payload = data[off:off + length]
    tools = [(b"\x02\x21\x4c\x18", ["lz4", "-dc"]),
             (b"\x28\xb5\x2f\xfd", ["zstd", "-dc"]),
             (b"\xfd7zXZ\x00", ["xz", "-dc"]),
             (b"\x1f\x8b\x08", ["gzip", "-dc"]),
             (b"\x5d\x00\x00", ["xz", "--format=lzma", "-dc"])]
    for magic, cmd in tools:
        if payload.startswith(magic):
            r = subprocess.run(cmd, input=payload, capture_output=True)
            if r.stdout.startswith(b"\x7fELF"):
                return r.stdout
            raise BuildError(f"{cmd[0]} failed on {vmlinuz}: "
                             f"{r.stderr.decode(errors='replace')}")
    raise BuildError(f"unknown kernel compression in {vmlinuz}: "
                     f"{payload[:4].hex()}")


def _modules(moddir: Path) -> list[Path]:
    """Needed .ko files with their deps, dependency order first."""
    index = {p.stem.replace("-", "_"): p for p in moddir.rglob("*.ko")}
    order: list[Path] = []

    def visit(name: str) -> None:
        p = index[name.replace("-", "_")]
        if p in order:
            return
        # The .modinfo section holds NUL-separated "key=value" strings;
        # read "depends=" directly (modinfo may not be on the host).
        blob = p.read_bytes()
        i = blob.find(b"\0depends=")
        deps = "" if i < 0 else blob[i + 9:blob.index(b"\0", i + 1)
                                    ].decode()
        for d in filter(None, deps.split(",")):
            visit(d)
        order.append(p)

    for m in MODULES:
        visit(m)
    return order


def _rm(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _assemble(p: Plan, files: dict[str, Path], root: Path,
              out: Path) -> None:
    kdir = root.parent / "kernel"
    for inp in p.inputs:
        if inp.kind != "deb":
            continue
        dest = kdir if inp.name == p.kernel_package else root
        subprocess.run(["dpkg-deb", "-x", str(files[inp.name]), str(dest)],
                       check=True)
    _log("kernel: extracting vmlinux")
    vmlinuz = next((kdir / "boot").glob("vmlinuz-*"))
    kver = vmlinuz.name[len("vmlinuz-"):]
    (out / "vmlinux.tmp").write_bytes(extract_vmlinux(vmlinuz))
    shutil.copyfile(vmlinuz, out / "bzImage.tmp")
    mods = _modules(kdir / "lib/modules" / kver)
    mdest = root / "lib/modules"
    mdest.mkdir(parents=True, exist_ok=True)
    order = []
    for m in mods:
        shutil.copyfile(m, mdest / m.name)
        order.append(f"/lib/modules/{m.name}")
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/modules.order").write_text("\n".join(order) + "\n")
    # Debian's usrmerge layout: the debs ship /lib, /lib64 and /bin paths.
    for d in DROP_DIRS:
        _rm(root / d)
    for sub in ("usr/sbin", "sbin", "usr/share/lintian"):
        _rm(root / sub)
    bb = root / "bin/busybox"
    for a in BUSYBOX_APPLETS:
        link = root / "bin" / a
        if not link.exists():
            link.symlink_to("busybox")
    py = root / "usr/bin/python3"
    if not py.exists():
        py.symlink_to("python3.11")
    if not bb.exists():
        raise BuildError("busybox missing from busybox-static")
    _log("wheels: unpacking")
    site = root / SITE
    site.mkdir(parents=True, exist_ok=True)
    for inp in p.inputs:
        if inp.kind == "wheel":
            with zipfile.ZipFile(files[inp.name]) as z:
                z.extractall(site)
    for info in list(site.glob("*.dist-info")):
        shutil.rmtree(info)
    for rel in SITE_PRUNE:
        _rm(site / rel)
    for f in list(site.rglob("*")):
        if f.suffix in SITE_PRUNE_SUFFIXES and f.is_file():
            f.unlink()
    for rel in STDLIB_PRUNE:
        _rm(root / STDLIB / rel)
    for ext in list((root / STDLIB / "lib-dynload").iterdir()):
        if ext.name.startswith(DYNLOAD_PRUNE):
            ext.unlink()
    for rel in LIB_PRUNE:
        _rm(root / rel)
    for rel_dest, data in p.repo_files:
        t = root / rel_dest
        t.parent.mkdir(parents=True, exist_ok=True)
        t.write_bytes(data)
    init = root / "init"
    init.write_bytes(dict(p.repo_files)["opt/capos/guest/init"])
    init.chmod(0o755)
    (root / "opt/capos/guest/init").unlink(missing_ok=True)
    for d in ("proc", "sys", "dev", "tmp", "run", "var/log", "etc"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.mknod(root / "dev/console", 0o600 | stat.S_IFCHR, os.makedev(5, 1))
    (root / "etc/passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n")
    _log("strip .so files")
    sos = [str(f) for f in root.rglob("*.so*")
           if f.is_file() and not f.is_symlink()]
    subprocess.run(["strip", "--strip-unneeded", *sos],
                   capture_output=True)
    _check_linkage(root)
    _log("compile .pyc (unchecked-hash), drop .py")
    for d in ("usr/lib/python3.11", SITE, "opt/capos"):
        subprocess.run(
            ["python3.11", "-m", "compileall", "-q", "-b", "-j", "0",
             "-f", "--invalidation-mode", "unchecked-hash",
             "-s", str(root), "-p", "/", str(root / d)],
            check=True, env=dict(os.environ, PYTHONHASHSEED="0"))
    for f in root.rglob("*.py"):
        if f.with_suffix(".pyc").exists():
            f.unlink()
    for cache in list(root.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)


def _dynamic(elf: Path) -> tuple[str | None, list[str]]:
    """An ELF file's program interpreter (``PT_INTERP``) and its
    ``DT_NEEDED`` names; ``(None, [])`` for a static one."""
    out = subprocess.run(["readelf", "-l", "-d", "-W", str(elf)],
                         capture_output=True, text=True)
    if out.returncode:
        raise BuildError(f"readelf failed on {elf.name}: "
                         f"{out.stderr.strip()}")
    interp = None
    needed = []
    for line in out.stdout.splitlines():
        if "Requesting program interpreter:" in line:
            interp = line.split(":", 1)[1].strip().rstrip("]")
        elif "(NEEDED)" in line and "[" in line:
            needed.append(line.split("[", 1)[1].rstrip("]"))
    return interp, needed


def _in_root(root: Path, path: str) -> bool:
    """Whether ``path`` (absolute in the guest) names a file inside
    ``root``, following symlinks as the guest would: an absolute link
    target is the guest's path, never the build machine's."""
    parts = [x for x in path.split("/") if x]
    here = root
    hops = 0
    while parts:
        part = parts.pop(0)
        nxt = here / part
        if nxt.is_symlink():
            hops += 1
            if hops > 40:
                return False
            target = os.readlink(nxt)
            rest = [x for x in target.split("/") if x]
            if target.startswith("/"):
                here = root
            parts = rest + parts
            continue
        if part == "..":
            here = here.parent if here != root else root
            continue
        here = nxt
    return here.is_file()


def _check_linkage(root: Path) -> None:
    """Every ELF file in the image finds, inside the image, its program
    interpreter and each shared library it names (``DT_NEEDED``) in the
    loader's directories: a pruned or missing one stops the build here,
    not the guest at boot with a loader error on the console."""
    missing = []
    for f in sorted(root.rglob("*")):
        if (f.is_symlink() or not f.is_file() or f.suffix == ".ko"
                or f.read_bytes()[:4] != b"\x7fELF"):
            continue
        interp, needed = _dynamic(f)
        rel = f.relative_to(root)
        if interp is not None and not _in_root(root, interp):
            missing.append(f"{rel} needs its interpreter {interp}")
        for name in needed:
            if not any(_in_root(root, f"/{d}/{name}") for d in LIB_DIRS):
                missing.append(f"{rel} needs {name}")
    if missing:
        raise BuildError("shared libraries missing from the image: "
                         + "; ".join(missing))


def _pack(root: Path, epoch: int, level: int, dest: Path) -> None:
    names = ["."]
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            rel = os.path.relpath(os.path.join(dirpath, n), root)
            names.append(rel)
    names.sort(key=lambda s: s.encode())
    for n in reversed(names):
        path = root / n
        if not path.is_symlink():
            mode = path.lstat().st_mode
            if stat.S_ISDIR(mode):
                path.chmod(0o755)
            elif stat.S_ISREG(mode):
                path.chmod(0o755 if mode & 0o111 else 0o644)
        os.utime(path, (epoch, epoch), follow_symlinks=False)
    _log(f"pack {len(names)} entries, zstd -{level} "
         f"(window 2^{ZSTD_WINDOW_LOG})")
    listing = ("\n".join(names) + "\n").encode()
    with dest.open("wb") as f:
        cpio = subprocess.Popen(
            ["cpio", "--quiet", "-o", "--reproducible", "-R", "0:0",
             "-H", "newc"], cwd=root, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, env=dict(os.environ, LC_ALL="C"))
        zst = subprocess.Popen(["zstd", "-q", f"-{level}", "-T2",
                                f"--zstd=wlog={ZSTD_WINDOW_LOG}", "-c"],
                               stdin=cpio.stdout, stdout=f)
        assert cpio.stdout is not None and cpio.stdin is not None
        cpio.stdout.close()
        cpio.stdin.write(listing)
        cpio.stdin.close()
        if cpio.wait() or zst.wait():
            raise BuildError("cpio/zstd failed")


def execute(p: Plan, out: Path, force: bool = False) -> str:
    """Run the plan into ``out``; return the initramfs sha256."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / "inputs.sha256"
    image = out / "initramfs.cpio.zst"
    if (not force and stamp.exists() and image.exists()
            and (out / "vmlinux").exists()
            and stamp.read_text().strip() == p.inputs_hash):
        digest = (out / "initramfs.cpio.zst.sha256").read_text().split()[0]
        _log("inputs unchanged, skipping rebuild")
        return digest
    t0 = time.monotonic()
    files = {}
    for i, inp in enumerate(p.inputs, 1):
        _log(f"[{i}/{len(p.inputs)}] {inp.file}")
        files[inp.name] = fetch(inp)
    try:
        with tempfile.TemporaryDirectory(prefix="capos-img-") as tmp:
            root = Path(tmp) / "root"
            root.mkdir()
            _assemble(p, files, root, out)
            _pack(root, p.source_date_epoch, p.zstd_level,
                  out / "initramfs.tmp")
    except BaseException:
        # A failed or interrupted build leaves no part-written output
        # (the finished files of an earlier build stay as they were).
        for part in TMP_PARTS:
            (out / part).unlink(missing_ok=True)
        raise
    (out / "vmlinux.tmp").replace(out / "vmlinux")
    (out / "bzImage.tmp").replace(out / "bzImage")
    (out / "initramfs.tmp").replace(image)
    digest = _sha256(image)
    (out / "initramfs.cpio.zst.sha256").write_text(
        f"{digest}  initramfs.cpio.zst\n")
    (out / "vmlinux.sha256").write_text(
        f"{_sha256(out / 'vmlinux')}  vmlinux\n")
    stamp.write_text(p.inputs_hash + "\n")
    _log(f"done in {time.monotonic() - t0:.1f}s, "
         f"{image.stat().st_size / 1e6:.1f} MB")
    return digest


PROG = "python -m image.build"


def verify_manifest(manifest: Path, pubkey: Path) -> int:
    """Check ``manifest`` as capos-init will at first boot: under
    ``pubkey`` alone (threshold 1), installed version 0, at the build
    host's clock. Returns the manifest version.

    :raises BuildError: the key or the manifest was refused, with the
        ``ManifestError`` reason (``badSignature``, ``unknownSigner``,
        ``malformed``, ``expired``...).
    """
    from bootmanifest import sign
    from bootmanifest.errors import ManifestError
    from services._runtime.clock import SystemClock

    try:
        key = sign.load_public(pubkey.read_bytes())
    except ValueError as err:
        raise BuildError(f"--pubkey {pubkey}: {err}") from err
    try:
        reader = sign.verify(manifest.read_bytes(), [key], 1, 0,
                             SystemClock().now())
    except ManifestError as err:
        raise BuildError(
            f"--manifest {manifest} refused under --pubkey {pubkey}: "
            f"{err.reason}: {err.detail}") from err
    return int(reader.version)


def _usage(ap: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    """Refuse bad arguments before anything is fetched or written."""
    if (a.manifest is None) != (a.pubkey is None):
        ap.error("--manifest and --pubkey go together (the guest starts "
                 "capos-init only with both)")
    for flag, path in (("--manifest", a.manifest), ("--pubkey", a.pubkey)):
        if path is None:
            continue
        if not path.exists():
            ap.error(f"{flag} {path}: no such file")
        if not path.is_file():
            ap.error(f"{flag} {path}: not a regular file")
        if not os.access(path, os.R_OK):
            ap.error(f"{flag} {path}: not readable")
    if a.out.exists() and not a.out.is_dir():
        ap.error(f"--out {a.out}: exists and is not a directory")


#: What a build writes in --out before it renames them into place.
TMP_PARTS = ("vmlinux.tmp", "bzImage.tmp", "initramfs.tmp")


@pipe_safe
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog=PROG, description=__doc__.splitlines()[0],
        epilog="Exit status: 0 built (or unchanged), 1 the build or the "
        "manifest check failed (reason on stderr, nothing written), 2 "
        "usage error, 130 interrupted (nothing written).")
    ap.add_argument("--out", type=Path, default=Path("build/image"),
                    help="output directory for vmlinux and "
                    "initramfs.cpio.zst (default: %(default)s)")
    ap.add_argument("--manifest", type=Path,
                    help="signed boot manifest (python -m bootmanifest "
                    "build) for capos-init; verified under --pubkey "
                    "first. Without it the image runs the smoke guest")
    ap.add_argument("--pubkey", type=Path,
                    help="the manifest's verifying key (PEM, or 64 hex "
                    "chars, as python -m bootmanifest pubkey prints)")
    ap.add_argument("--force", action="store_true",
                    help="rebuild even if the inputs are unchanged")
    a = ap.parse_args(argv)
    _usage(ap, a)
    if active_lock() != LOCK:
        _log(f"lock: {active_lock()} (CAPOS_IMAGE_LOCK), not {LOCK}")
    try:
        if a.manifest is None:
            _log("no --manifest: smoke-only image (capos-init does not "
                 "start; the guest serves HTTPS from image/guest/smoke.py)")
        else:
            version = verify_manifest(a.manifest, a.pubkey)
            _log(f"manifest {a.manifest} version {version} verifies "
                 f"under {a.pubkey}")
        digest = execute(plan(a.manifest, a.pubkey), a.out, a.force)
    except BuildError as e:
        print(f"image build failed: {e.reason}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("image build interrupted: nothing written", file=sys.stderr)
        return 130
    print(f"{digest}  {a.out / 'initramfs.cpio.zst'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
