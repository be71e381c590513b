"""What an error looks like when it crosses a capability boundary.

A caller sees ``<reason>: <detail>``, never the server's traceback
(DESIGN.md section 2). pycapnp 2.2 formats a failed server method with
``traceback.format_exception`` and sends the text to the caller; this
module replaces that formatter, for the whole service process, with one
that keeps only the exception's own message. The full traceback is still
logged locally at DEBUG.

Servers raise :class:`CapabilityError` (or any exception: its message is
all that leaves the process). Callers parse the remote text back with
:func:`parse_remote`.
"""

from __future__ import annotations

import logging
import traceback
from types import ModuleType
from typing import Any

import capnp

log = logging.getLogger(__name__)

_REMOTE_PREFIXES = ("remote exception: ", "message = ")


class CapabilityError(Exception):
    """A refusal or failure to report to the caller of a capability."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class _MessageOnly:
    """Stands in for the ``traceback`` module inside pycapnp."""

    @staticmethod
    def format_exception(
        etype: type[BaseException], exc: BaseException, tb: Any
    ) -> list[str]:
        log.debug(
            "capability method failed:\n%s",
            "".join(traceback.format_exception(etype, exc, tb)),
        )
        if isinstance(exc, CapabilityError):
            return [str(exc)]
        text = str(exc) or etype.__name__
        return [f"internal: {etype.__name__}: {text}"]

    def __getattr__(self, name: str) -> Any:
        return getattr(traceback, name)


def install() -> None:
    """Make this process's capability errors message-only. Idempotent."""
    lib: ModuleType = capnp.lib.capnp
    if not isinstance(getattr(lib, "_traceback", None), _MessageOnly):
        lib._traceback = _MessageOnly()  # type: ignore[attr-defined]


def parse_remote(err: BaseException) -> tuple[str, str]:
    """``(reason, detail)`` of an error raised by a remote capability."""
    text = getattr(err, "description", None) or str(err)
    for prefix in _REMOTE_PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix):]
    text = text.strip()
    reason, sep, detail = text.partition(": ")
    if not sep or " " in reason:
        return "internal", text
    return reason, detail


install()
