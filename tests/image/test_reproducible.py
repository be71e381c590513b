"""Same inputs, same bytes: two builds give identical digests."""
from __future__ import annotations

from pathlib import Path

import pytest

from image.build import plan
from tests.vm.conftest import build_for_tests

pytestmark = pytest.mark.vm  # slow: two full builds (~1 min each)


def test_two_builds_are_identical(tmp_path: Path) -> None:
    # One plan (repo files snapshotted) so edits to the tree made while
    # the test runs cannot make the two builds differ.
    the_plan = plan()
    a = build_for_tests(tmp_path / "a", the_plan)
    b = build_for_tests(tmp_path / "b", the_plan)
    assert a == b
    assert (tmp_path / "a/vmlinux").read_bytes() == \
        (tmp_path / "b/vmlinux").read_bytes()
    assert (tmp_path / "a/initramfs.cpio.zst.sha256").read_text() == \
        (tmp_path / "b/initramfs.cpio.zst.sha256").read_text()


def test_lock_names_only_public_sources() -> None:
    """Every pinned input must be fetchable from any machine: Debian's
    mirror or PyPI, never a path on the machine that made the lock."""
    import json

    from image.build import LOCK

    lock = json.loads(LOCK.read_text())
    for item in lock["debs"] + lock["wheels"]:
        assert item["url"].startswith(
            ("http://deb.debian.org/", "https://files.pythonhosted.org/")
        ), item["url"]
        assert len(item["sha256"]) == 64
