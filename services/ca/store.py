"""The CA directory: key, certificates and the issuance database.

Layout under one directory (the VM's data disk in the guest)::

    ca.key.pem          the CA key, PKCS#8, mode 0600
    ca.cert.pem         the CA's self-signed certificate
    responder.key.pem   the delegated OCSP signer's key, mode 0600
    responder.cert.pem  its certificate (id-kp-OCSPSigning)
    issued.sqlite3      issued certificates and revocations (WAL)

Files are written to a temporary name, fsynced and renamed, so a crash
leaves either the old file or the new one. The database runs in WAL mode
with ``synchronous=FULL``: a revocation that returned has reached the
disk. A new database is made the same way: built under a temporary name
without syncs, then fsynced once and renamed (:func:`create_database`).
One connection, guarded by a lock, serves every thread (the OCSP
responder's HTTP threads read statuses through it).

Limitations: keys are stored unencrypted, protected by file mode only;
the key-management proposal owns sealing them.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from services.ca.errors import StoreError
from services.ca.model import IssuedRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS issued (
    serial TEXT PRIMARY KEY,
    der BLOB NOT NULL,
    sha256 BLOB NOT NULL,
    not_before INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    sans TEXT NOT NULL,
    revoked_at INTEGER,
    reason TEXT NOT NULL DEFAULT 'unspecified'
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write-then-rename, fsynced, so readers see old or new, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    """Make the renames in ``path`` durable."""
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def create_database(path: Path) -> None:
    """Make the empty issuance database at ``path``, in WAL mode, with
    two syncs (the file, then the directory after the rename).

    Opening a new file in WAL mode with ``synchronous=FULL`` and making
    the tables syncs eight times: switching an empty database to WAL
    writes its first page through a rollback journal (the journal, its
    directory, the journal again, the database), and each table is a
    WAL commit. None of them is needed, since the file only gets its
    name once it is complete: a crash before leaves no database (the
    next start makes it again), after it the whole of it. On the CA's
    first start in the guest (TCG), making and opening the database
    took 160 ms of its CPU time and 190-200 ms, 135-145 ms and 150-165
    ms this way.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    for leftover in (tmp, tmp.with_name(f"{tmp.name}-journal"),
                     tmp.with_name(f"{tmp.name}-wal"),
                     tmp.with_name(f"{tmp.name}-shm")):
        leftover.unlink(missing_ok=True)
    db = sqlite3.connect(tmp, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)
    finally:
        db.close()  # the last connection: the WAL is checkpointed, removed
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _ts(when: dt.datetime) -> int:
    return int(when.timestamp())


def _dt(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


class CADirectory:
    """Persistent state of one CA."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = threading.Lock()
        db_path = self.path / "issued.sqlite3"
        if not db_path.exists():
            create_database(db_path)
        self._db = sqlite3.connect(db_path, check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # Keys and certificates.

    def load_pair(self, stem: str) -> tuple[Any, x509.Certificate] | None:
        """``(key, cert)`` saved under ``stem``, or None if absent."""
        key_path = self.path / f"{stem}.key.pem"
        cert_path = self.path / f"{stem}.cert.pem"
        if not key_path.exists() or not cert_path.exists():
            return None
        try:
            key = serialization.load_pem_private_key(
                key_path.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except ValueError as err:
            raise StoreError(f"{stem} key or certificate unreadable",
                             path=str(self.path)) from err
        if cert.public_key() != key.public_key():
            raise StoreError(f"{stem} certificate does not match its key",
                             path=str(self.path))
        return key, cert

    def save_pair(self, stem: str, key: Any, cert: x509.Certificate) -> None:
        write_atomic(self.path / f"{stem}.key.pem", key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()), mode=0o600)
        write_atomic(self.path / f"{stem}.cert.pem",
                     cert.public_bytes(serialization.Encoding.PEM))

    # The issuance database.

    def add(self, record: IssuedRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO issued (serial, der, sha256, not_before,"
                " not_after, sans) VALUES (?, ?, ?, ?, ?, ?)",
                (format(record.serial, "x"), record.der, record.sha256,
                 _ts(record.not_before), _ts(record.not_after),
                 "\n".join(record.sans)))

    def revoke(self, serial: int, reason: str, at: dt.datetime) -> bool:
        """Mark revoked; False if already revoked (the first time and
        reason stand, as RFC 5280 5.3.2 invalidity is not rewritten)."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE issued SET revoked_at = ?, reason = ?"
                " WHERE serial = ? AND revoked_at IS NULL",
                (_ts(at), reason, format(serial, "x")))
            return cur.rowcount == 1

    def get(self, serial: int) -> IssuedRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM issued WHERE serial = ?",
                (format(serial, "x"),)).fetchone()
        return _record(row) if row else None

    def records(self) -> list[IssuedRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM issued ORDER BY rowid").fetchall()
        return [_record(r) for r in rows]

    def revoked(self) -> list[IssuedRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM issued WHERE revoked_at IS NOT NULL"
                " ORDER BY rowid").fetchall()
        return [_record(r) for r in rows]

    def next_counter(self, name: str) -> int:
        """1, 2, 3... per name, persisted (CRL numbers, RFC 5280 5.2.3)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT value FROM counters WHERE name=?",
                                   (name,)).fetchone()
            value = (row[0] if row else 0) + 1
            self._db.execute(
                "INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)",
                (name, value))
            self._db.execute("COMMIT")
        return int(value)


def _record(row: tuple[Any, ...]) -> IssuedRecord:
    serial, der, sha256, nb, na, sans, revoked_at, reason = row
    return IssuedRecord(
        serial=int(serial, 16), der=bytes(der), sha256=bytes(sha256),
        not_before=_dt(nb), not_after=_dt(na),
        sans=tuple(s for s in sans.split("\n") if s),
        revoked_at=_dt(revoked_at) if revoked_at is not None else None,
        reason=reason)
