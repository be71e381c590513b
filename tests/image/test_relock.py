"""A pinned input gone from the mirror: release builds stop, test builds
re-resolve into their own lock (tests/vm/conftest.py)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from image import build as image_build
from image import lock as image_lock
from tests.vm import conftest

pytestmark = pytest.mark.vm  # talks to Debian's mirror and PyPI

GONE = image_build.Input(
    name="capos-vanished", version="0.0.0", sha256="0" * 64,
    url="https://files.pythonhosted.org/packages/00/00/"
        "capos_vanished-0.0.0-py3-none-any.whl",
    file="capos_vanished-0.0.0-py3-none-any.whl", kind="wheel")


@pytest.fixture(autouse=True)
def _environment_restored(monkeypatch: pytest.MonkeyPatch
                          ) -> Iterator[None]:
    """Every test here leaves the environment as it found it: a
    ``CAPOS_IMAGE_LOCK`` left behind would point every later build of
    the session at this test's lock. The test's ``monkeypatch`` (the same
    object) is undone first, so the check sees what teardown leaves."""
    before = dict(os.environ)
    yield
    monkeypatch.undo()
    after = dict(os.environ)
    changed = {k: (before.get(k), after.get(k))
               for k in before.keys() | after.keys()
               if k != "PYTEST_CURRENT_TEST"
               and before.get(k) != after.get(k)}
    assert not changed, f"environment changed (before, after): {changed}"


def test_a_vanished_pin_stops_a_build_naming_file_and_relock() -> None:
    with pytest.raises(image_build.BuildError) as info:
        image_build.fetch(GONE)
    assert info.value.gone is True
    assert GONE.file in info.value.reason
    assert image_build.RELOCK in info.value.reason


def test_current_kernel_is_the_cloud_metapackage_dependency() -> None:
    name = image_lock.current_kernel()
    assert re.fullmatch(r"linux-image-\d+\.\d+\.\d+-\d+-cloud-amd64", name)


def test_relock_for_tests_writes_its_own_lock_not_the_repos(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = image_build.LOCK.read_bytes()
    monkeypatch.setattr(conftest, "TEST_LOCK", tmp_path / "test.lock.json")
    # relock_for_tests points the session at its lock by setting
    # os.environ itself. setenv records the session's value (unset, or
    # the session's own test lock) for monkeypatch to put back; delenv
    # alone records nothing when the variable is unset, so teardown
    # would leave this test's lock behind.
    monkeypatch.setenv("CAPOS_IMAGE_LOCK", "")
    monkeypatch.delenv("CAPOS_IMAGE_LOCK")
    path = conftest.relock_for_tests("pinned file gone: example")
    data = json.loads(path.read_text())
    assert path == tmp_path / "test.lock.json"
    assert image_build.active_lock() == path
    assert conftest.use_test_lock_if_current() is True
    assert image_build.LOCK.read_bytes() == before
    assert data["kernel_package"] == image_lock.current_kernel()
    names = {d["name"] for d in data["debs"]}
    assert data["kernel_package"] in names
    assert {"python3.11-minimal", "busybox-static", "libssl3"} <= names
    assert {w["name"].lower() for w in data["wheels"]} >= {
        "cryptography", "pyopenssl", "pycapnp", "acme", "josepy"}
    for item in data["debs"] + data["wheels"]:
        assert item["url"].startswith(
            ("http://deb.debian.org/", "https://files.pythonhosted.org/")
        ), item["url"]
        assert len(item["sha256"]) == 64
    # The plan built from it is a different set of inputs than the
    # repository's only where the mirror moved; it always differs in hash.
    assert image_build.plan(lock_path=path).inputs_hash != (
        image_build.plan(lock_path=image_build.LOCK).inputs_hash)
