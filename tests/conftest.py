"""Fixtures shared by the whole suite: real peers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.pebble import Pebble


@pytest.fixture
def pebble(tmp_path: Path) -> Iterator[Pebble]:
    """Debian's pebble and challtestsrv, with pebble's default 5% nonce
    rejection left on: the client must cope with badNonce."""
    with Pebble(tmp_path / "pebble-logs") as peb:
        yield peb
