"""The certificate store's on-disk backend: one file per handle, each
replaced atomically.

A ``put`` writes the whole record to a temporary file in the same
directory, ``fsync``\\s it, renames it over ``<handle>.chain`` and
``fsync``\\s the directory (POSIX ``rename`` replaces atomically, so a
power cut leaves the old record or the new one). At open, temporary
files are what a crash left between write and rename: they are never
read, and removed. Every record carries its own SHA-256, so a record
damaged below the file system is refused rather than served.

Record: ``CAPOSCS1``, a big-endian u32 count, then per certificate a
u32 length and its DER, then the SHA-256 of everything before it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
import struct
from pathlib import Path

MAGIC = b"CAPOSCS1"
SUFFIX = ".chain"
TEMP_MARK = ".tmp-"


class CorruptRecordError(ValueError):
    """A record whose framing or checksum is wrong."""


def encode(ders: list[bytes]) -> bytes:
    body = MAGIC + struct.pack(">I", len(ders)) + b"".join(
        struct.pack(">I", len(d)) + d for d in ders)
    return body + hashlib.sha256(body).digest()


def decode(data: bytes) -> list[bytes]:
    if len(data) < len(MAGIC) + 4 + 32 or not data.startswith(MAGIC):
        raise CorruptRecordError("not a certificate-store record")
    body, digest = data[:-32], data[-32:]
    if hashlib.sha256(body).digest() != digest:
        raise CorruptRecordError("checksum mismatch")
    (count,), pos = struct.unpack_from(">I", body, len(MAGIC)), 12
    ders = []
    for _ in range(count):
        if pos + 4 > len(body):
            raise CorruptRecordError("truncated length")
        (n,) = struct.unpack_from(">I", body, pos)
        pos += 4
        if pos + n > len(body):
            raise CorruptRecordError("truncated certificate")
        ders.append(body[pos:pos + n])
        pos += n
    if pos != len(body) or not ders:
        raise CorruptRecordError("trailing bytes or empty chain")
    return ders


@dataclasses.dataclass(frozen=True)
class Loaded:
    """What :meth:`DiskBackend.load` found."""

    chains: dict[str, list[bytes]]
    discarded_temps: tuple[str, ...]
    corrupt: tuple[tuple[str, str], ...]


class DiskBackend:
    """Records under one directory (the lead mounts a data disk there)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._seq = itertools.count()

    def _final(self, handle: str) -> Path:
        return self.directory / f"{handle}{SUFFIX}"

    def load(self) -> Loaded:
        """Every intact record; temporary files are removed unread."""
        chains: dict[str, list[bytes]] = {}
        temps, corrupt = [], []
        for path in sorted(self.directory.iterdir()):
            if TEMP_MARK in path.name:
                temps.append(path.name)
                path.unlink()
                continue
            if not path.name.endswith(SUFFIX):
                continue
            handle = path.name[: -len(SUFFIX)]
            try:
                chains[handle] = decode(path.read_bytes())
            except CorruptRecordError as err:
                corrupt.append((handle, str(err)))
        if temps:
            self._sync_dir()
        return Loaded(chains, tuple(temps), tuple(corrupt))

    def write_temp(self, handle: str, ders: list[bytes]) -> Path:
        """Step one of a put: the record in a synced temporary file."""
        tmp = self.directory / (
            f".{handle}{SUFFIX}{TEMP_MARK}{os.getpid()}-{next(self._seq)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            data = encode(ders)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        return tmp

    def commit(self, handle: str, tmp: Path) -> None:
        """Step two: rename over the record and sync the directory."""
        os.replace(tmp, self._final(handle))
        self._sync_dir()

    def write(self, handle: str, ders: list[bytes]) -> None:
        self.commit(handle, self.write_temp(handle, ders))

    def delete(self, handle: str) -> None:
        try:
            self._final(handle).unlink()
        except FileNotFoundError:
            return
        self._sync_dir()

    def _sync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
