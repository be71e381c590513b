"""Session fixture: build the image once (cached on its inputs hash)."""
from __future__ import annotations

from pathlib import Path

import pytest

from image.build import REPO, BuildError, Plan, execute, plan


def build_or_skip(out: Path, the_plan: Plan | None = None) -> str:
    """Build into ``out``. A pinned input gone from the mirror skips
    (CI must not turn red because Debian moved on); any other failure
    fails. Release builds use ``python -m image.build``, which stops."""
    try:
        return execute(the_plan or plan(), out)
    except BuildError as e:
        if e.gone:
            pytest.skip(e.reason)
        raise


@pytest.fixture(scope="session")
def image_dir() -> Path:
    """The image ``make run`` boots (it also carries the smoke guest, which
    ``capos.guest=smoke`` selects), so one test run builds one image."""
    from tools import run

    report = run.Report()
    manifest, pub = run.build_manifest(report)
    out = REPO / "build/image"
    build_or_skip(out, plan(manifest, pub))
    return out
