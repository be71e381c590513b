"""Fixtures: a private CA with its responder on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.ocsp.pkiworld import World, world


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    yield from world(tmp_path / "ca")


@pytest.fixture
def rsa_world(tmp_path: Path) -> Iterator[World]:
    yield from world(tmp_path / "ca-rsa", key_type="rsa2048")
