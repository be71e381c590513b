"""``python -m image.lock`` on bad arguments, run as a subprocess: each
is refused (exit 2, one ``error:`` line) before anything is resolved or
written. Every case passes ``--out`` under tmp_path: without it the
command would rewrite the repository's lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--kernel", "bogus"], ["--kernel 'bogus'",
                                 "not a linux-image-* package"]),
        (["--kernel", "linux-image-0.0.0-99-bogus-amd64"],
         ["--kernel 'linux-image-0.0.0-99-bogus-amd64'",
          "not on the configured mirror", "apt-cache show"]),
        (["--out", "{tmp}/no/such/lock.json"],
         ["--out", "directory", "does not exist"]),
        (["--out", "{tmp}"], ["--out", "is a directory"]),
    ],
    ids=["not-a-kernel", "kernel-not-on-mirror", "out-parent-missing",
         "out-is-dir"],
)
def test_bad_arguments_exit_two(tmp_path: Path, args: list[str],
                                words: list[str]) -> None:
    argv = [a.format(tmp=tmp_path) for a in args]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "lock.json")]
    assert "--out" in argv  # never the repository's lock
    proc = subprocess.run(
        [sys.executable, "-m", "image.lock", *argv], cwd=REPO,
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("python -m image.lock: error: "), last
    for word in words:
        assert word in last, last
    assert sorted(p.name for p in tmp_path.iterdir()) == []
