"""The image build's linkage check (:func:`image.build._check_linkage`):
a shared library some ELF file in the root names but the root lacks
stops the build, with the file and the library in the reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from image import build

#: A dynamically linked program of the build machine's own: it names
#: libc.so.6 (and nothing this test could not copy).
PROGRAM = Path("/usr/bin/env")


def _libc() -> Path:
    for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"):
        if (Path(d) / "libc.so.6").exists():
            return Path(d) / "libc.so.6"
    pytest.fail("no libc.so.6 on this machine")


def test_a_library_missing_from_the_root_stops_the_build(
        tmp_path: Path) -> None:
    (tmp_path / "usr/bin").mkdir(parents=True)
    shutil.copy(PROGRAM, tmp_path / "usr/bin/env")
    assert "libc.so.6" in (build._needed(tmp_path / "usr/bin/env") or [])
    with pytest.raises(build.BuildError) as err:
        build._check_linkage(tmp_path)
    assert err.value.reason == (
        "shared libraries missing from the image: "
        "usr/bin/env needs libc.so.6")


def test_the_library_in_a_loader_directory_satisfies_it(
        tmp_path: Path) -> None:
    (tmp_path / "usr/bin").mkdir(parents=True)
    shutil.copy(PROGRAM, tmp_path / "usr/bin/env")
    lib = tmp_path / "lib/x86_64-linux-gnu"
    lib.mkdir(parents=True)
    shutil.copy(_libc(), lib / "libc.so.6")
    # libc itself names only the loader, which it does not need to
    # find beside it: ld-linux is in lib64 in Debian's layout.
    for name in build._needed(lib / "libc.so.6") or []:
        (tmp_path / "lib64").mkdir(exist_ok=True)
        (tmp_path / "lib64" / name).write_bytes(b"")
    build._check_linkage(tmp_path)

