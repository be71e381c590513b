"""The CA directory's issuance database: a new one is complete, in WAL
mode, and made again after a creation that was cut short."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from services.ca.model import IssuedRecord
from services.ca.store import CADirectory

T = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def record(serial: int) -> IssuedRecord:
    return IssuedRecord(serial=serial, der=b"der", sha256=b"h" * 32,
                        not_before=T, not_after=T + dt.timedelta(days=1),
                        sans=("dns:a.example",))


def journal_mode(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        return str(db.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        db.close()


def test_new_database_is_complete_and_in_wal_mode(tmp_path: Path) -> None:
    store = CADirectory(tmp_path / "ca")
    assert store.records() == []
    store.add(record(7))
    assert store.revoke(7, "keyCompromise", T)
    assert store.next_counter("crl") == 1
    store.close()
    assert sorted(p.name for p in (tmp_path / "ca").iterdir()) == [
        "issued.sqlite3"]
    assert journal_mode(tmp_path / "ca/issued.sqlite3") == "wal"
    again = CADirectory(tmp_path / "ca")
    assert [(r.serial, r.reason) for r in again.revoked()] == [
        (7, "keyCompromise")]
    assert again.next_counter("crl") == 2
    again.close()


def test_creation_cut_short_is_made_again(tmp_path: Path) -> None:
    # What a power cut inside create_database leaves: the unfinished
    # file under its temporary name, never under the database's own.
    (tmp_path / "ca").mkdir()
    (tmp_path / "ca/.issued.sqlite3.tmp").write_bytes(b"half a datab")
    (tmp_path / "ca/.issued.sqlite3.tmp-journal").write_bytes(b"x")
    store = CADirectory(tmp_path / "ca")
    store.add(record(1))
    assert [r.serial for r in store.records()] == [1]
    store.close()
    assert sorted(p.name for p in (tmp_path / "ca").iterdir()) == [
        "issued.sqlite3"]
