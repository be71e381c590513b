"""The image build's linkage check (:func:`image.build._check_linkage`):
an ELF file's program interpreter, or a shared library it names, that
the root lacks stops the build, with the file and what it needs in the
reason; links are followed inside the root, never onto the build
machine."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from image import build

#: A dynamically linked program of the build machine's own: it names
#: libc.so.6 and the loader.
PROGRAM = Path("/usr/bin/env")
HOST_LIBS = Path("/lib/x86_64-linux-gnu")
LOADER = "/lib64/ld-linux-x86-64.so.2"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    if not (HOST_LIBS / "libc.so.6").exists():
        pytest.fail("no libc.so.6 on this machine")
    (tmp_path / "usr/bin").mkdir(parents=True)
    shutil.copy(PROGRAM, tmp_path / "usr/bin/env")
    return tmp_path


def _reason(root: Path) -> str:
    with pytest.raises(build.BuildError) as err:
        build._check_linkage(root)
    return err.value.reason


def test_what_a_program_needs_is_read_from_it(root: Path) -> None:
    interp, needed = build._dynamic(root / "usr/bin/env")
    assert interp == LOADER
    assert "libc.so.6" in needed


def test_a_missing_library_and_interpreter_stop_the_build(
        root: Path) -> None:
    assert _reason(root) == (
        "shared libraries missing from the image: "
        f"usr/bin/env needs its interpreter {LOADER}; "
        "usr/bin/env needs libc.so.6")


def test_an_absolute_link_is_followed_inside_the_root(root: Path) -> None:
    """Debian's /lib64 loader is an absolute link into /lib: inside the
    root it must land on the root's file, and a link to a file only the
    build machine has satisfies nothing."""
    (root / "lib64").mkdir()
    (root / "lib64/ld-linux-x86-64.so.2").symlink_to(
        HOST_LIBS / "ld-linux-x86-64.so.2")
    lib = root / "lib/x86_64-linux-gnu"
    lib.mkdir(parents=True)
    (lib / "libc.so.6").symlink_to(HOST_LIBS / "libc.so.6")
    assert _reason(root) == (
        "shared libraries missing from the image: "
        f"usr/bin/env needs its interpreter {LOADER}; "
        "usr/bin/env needs libc.so.6")
    # The same links, with the files they name inside the root.
    (lib / "libc.so.6").unlink()
    shutil.copy(HOST_LIBS / "libc.so.6", lib / "libc.so.6")
    shutil.copy(HOST_LIBS / "ld-linux-x86-64.so.2",
                lib / "ld-linux-x86-64.so.2")
    build._check_linkage(root)
