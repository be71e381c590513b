"""Deferred dataclasses (:mod:`services._runtime.deferred`) are the
classes :func:`dataclasses.dataclass` makes, made on first use; and
capos-init's pre-fork imports make none of the project's."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path
from typing import Any

import pytest

from services._runtime import deferred
from tools.bench_imports import PREFORK_IMPORTS

REPO = Path(__file__).resolve().parents[3]


def pair() -> tuple[type, type]:
    """The same frozen class, from dataclasses and deferred."""

    def body(name: str) -> type:
        def post_init(self: Any) -> None:
            if self.n < 0:
                raise ValueError("negative")

        return type(name, (), {
            "__annotations__": {"n": "int", "tags": "tuple[str, ...]",
                                "seen": "list[int]"},
            "__doc__": "A value.", "__module__": __name__,
            "__qualname__": name, "tags": ("a",),
            "seen": dataclasses.field(default_factory=list,
                                      compare=False),
            "__post_init__": post_init,
        })

    eager = dataclasses.dataclass(frozen=True)(body("Value"))
    lazy = deferred.dataclass(frozen=True)(body("Value"))
    return eager, lazy


def test_same_class_as_dataclasses_makes() -> None:
    eager, lazy = pair()
    assert not deferred.is_made(lazy)
    a, b = eager(3), lazy(3)
    assert deferred.is_made(lazy)
    assert repr(a) == repr(b) == "Value(n=3, tags=('a',), seen=[])"
    assert lazy(3) == b and lazy(3) != lazy(4) and b != a
    assert hash(lazy(3, ("x",))) == hash(eager(3, ("x",)))
    assert [f.name for f in dataclasses.fields(b)] == ["n", "tags", "seen"]
    assert dataclasses.asdict(b) == dataclasses.asdict(a)
    assert dataclasses.replace(b, n=5) == lazy(5)
    assert lazy.__match_args__ == eager.__match_args__
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.n = 4  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="negative"):
        lazy(-1)
    with pytest.raises(TypeError):
        lazy()
    assert lazy(1).seen is not lazy(1).seen


def test_fields_read_before_any_instance_make_the_class() -> None:
    _, lazy = pair()
    assert dataclasses.is_dataclass(lazy)
    assert deferred.is_made(lazy)
    assert [f.name for f in dataclasses.fields(lazy)] == [
        "n", "tags", "seen"]


def test_a_dataclass_deriving_from_one_not_yet_made() -> None:
    _, lazy = pair()

    @dataclasses.dataclass(frozen=True)
    class Tagged(lazy):  # type: ignore[valid-type, misc]
        """A value with a label."""

        label: str = ""

    assert deferred.is_made(lazy)
    assert repr(Tagged(1, label="x")).endswith(
        "Tagged(n=1, tags=('a',), seen=[], label='x')")


def test_first_instances_on_two_threads_make_it_once() -> None:
    _, lazy = pair()
    start = threading.Barrier(2)
    made = []

    def first() -> None:
        start.wait()
        made.append(lazy(1))

    threads = [threading.Thread(target=first) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made == [lazy(1), lazy(1)]


#: capos-init's pre-fork import set (tools/bench_imports.py's); prints
#: how many deferred dataclasses there are, then those it made.
PROBE = PREFORK_IMPORTS + """\
import json
from services._runtime import deferred
print(json.dumps([len(deferred.CLASSES)] + [
    f"{c.__module__}.{c.__qualname__}" for c in deferred.CLASSES
    if deferred.is_made(c)]))
"""


def test_prefork_imports_make_no_deferred_dataclass() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), sysconfig.get_paths()["purelib"]])
    env["CAPOS_SCHEMA_DIR"] = str(REPO / "schema")
    proc = subprocess.run(
        [sys.executable, "-S", "-c", PROBE], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    count, *made = json.loads(proc.stdout)
    assert count >= 14
    assert made == []


#: The same imports, then every deferred dataclass made: a definition
#: error (a default before a field without one, say) shows here, not
#: at a service's first use of the class after a boot.
MAKE_ALL = PREFORK_IMPORTS + """\
import dataclasses, json
from services._runtime import deferred
print(json.dumps({f"{c.__module__}.{c.__qualname__}":
                  [f.name for f in dataclasses.fields(c)]
                  for c in deferred.CLASSES}))
"""


def test_every_deferred_dataclass_of_the_project_can_be_made() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), sysconfig.get_paths()["purelib"]])
    env["CAPOS_SCHEMA_DIR"] = str(REPO / "schema")
    proc = subprocess.run(
        [sys.executable, "-S", "-c", MAKE_ALL], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    made = json.loads(proc.stdout)
    assert len(made) >= 14
    assert all(fields for fields in made.values()), made


def test_a_class_with_its_own_init_keeps_it() -> None:
    # init=False with the class's own __init__ (the verifier's
    # VerifiedPath writes its fields into the instance dict): the
    # stand-in runs first, then the class's own, never dataclasses'.
    calls: list[int] = []

    @deferred.dataclass(frozen=True, init=False)
    class Own:
        n: int

        def __init__(self, n: int) -> None:
            calls.append(n)
            self.__dict__["n"] = n * 2

    first = Own(2)
    assert deferred.is_made(Own)
    assert first.n == 4 and Own(3).n == 6 and calls == [2, 3]
    assert first == Own(2) and repr(first) == (
        "test_a_class_with_its_own_init_keeps_it.<locals>.Own(n=4)")
    assert [f.name for f in dataclasses.fields(Own)] == ["n"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.n = 1  # type: ignore[misc]
