"""Dataclasses made when first used, not when their module is imported.

Python 3.11 compiles each method :func:`dataclasses.dataclass` adds
(``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, and for a frozen
class ``__setattr__`` and ``__delattr__``) from source text as the class
is created: 2-5M instructions a class. capos-init imports every
service's modules once, before it forks the services, and with them the
classes of results that no service makes while the system boots: a
checked CRL, a verified path, a revocation verdict, a trust store's
filtered views (46M of the 708M instructions of capos-init's pre-fork
imports, callgrind), and those of an issuance and an OCSP answer, which
the CA makes only once the system is ready (31M of the 663M left).

``@deferred.dataclass(...)`` takes the arguments of
:func:`dataclasses.dataclass` and makes the same class, only later: on
its first instance, or when anything reads its fields
(:func:`dataclasses.fields`, ``is_dataclass``, ``replace``, ``asdict``,
a dataclass deriving from it, all of which look up
``__dataclass_fields__``). Until then the class has a stand-in
``__init__`` and a stand-in ``__dataclass_fields__``, and no instance.
The process that first needs the class pays for it: the verifier on its
first verification, say, instead of capos-init at every boot.

It suits a class that nothing instantiates as its module is imported or
as a service starts; ``tests/services/runtime/test_deferred.py`` checks
that capos-init's pre-fork imports make none of them. A field declared
with ``dataclasses.field(...)`` reads as that ``Field`` on the class
until the class is made (an instance never sees it). ``slots=True`` is
refused: it makes a new class, which a stand-in cannot become.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform

C = TypeVar("C", bound=type)

#: Held while a class is made: two threads' first instances make it
#: once. Reentrant, since making a class makes its deferred bases.
_MAKING = threading.RLock()

#: Every deferred dataclass, made or not (for the pre-fork check).
CLASSES: list[type] = []

#: The ``__init__`` a deferred class defines itself (with ``init=False``,
#: say), put back before the class is made.
_OWN_INIT: dict[type, Callable[..., None]] = {}


def is_made(cls: type) -> bool:
    """Whether ``cls`` (a deferred dataclass) has been made yet."""
    return "__dataclass_params__" in cls.__dict__


def _make(cls: type, options: dict[str, Any]) -> None:
    with _MAKING:
        if is_made(cls):
            return
        # dataclasses keeps an __init__ the class defines itself, and
        # sets __dataclass_fields__: both stand-ins go first.
        del cls.__init__  # type: ignore[misc]
        delattr(cls, "__dataclass_fields__")
        own = _OWN_INIT.get(cls)
        if own is not None:
            cls.__init__ = own  # type: ignore[misc]
        dataclasses.dataclass(cls, **options)


class _Fields:
    """The stand-in ``__dataclass_fields__``: reading it makes the
    class, then answers with the real one."""

    def __init__(self, cls: type, options: dict[str, Any]) -> None:
        self._cls = cls
        self._options = options

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        _make(self._cls, self._options)
        return self._cls.__dict__["__dataclass_fields__"]


@dataclass_transform(field_specifiers=(dataclasses.field, dataclasses.Field))
def dataclass(*, init: bool = True, repr: bool = True, eq: bool = True,
              order: bool = False, unsafe_hash: bool = False,
              frozen: bool = False, match_args: bool = True,
              kw_only: bool = False) -> Callable[[C], C]:
    """:func:`dataclasses.dataclass`, made on first use (see the module)."""
    options: dict[str, Any] = dict(
        init=init, repr=repr, eq=eq, order=order, unsafe_hash=unsafe_hash,
        frozen=frozen, match_args=match_args, kw_only=kw_only)

    def wrap(cls: C) -> C:
        if "__init__" in cls.__dict__:
            _OWN_INIT[cls] = cls.__dict__["__init__"]

        def stand_in(self: Any, *args: Any, **kwargs: Any) -> None:
            _make(cls, options)
            cls.__init__(self, *args, **kwargs)  # type: ignore[misc]

        stand_in.__name__ = "__init__"
        stand_in.__qualname__ = f"{cls.__qualname__}.__init__"
        cls.__init__ = stand_in  # type: ignore[misc]
        cls.__dataclass_fields__ = _Fields(  # type: ignore[attr-defined]
            cls, options)
        CLASSES.append(cls)
        return cls

    return wrap
