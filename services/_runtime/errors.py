"""The one root of the services' own errors.

Each service names its refusals with a plain-Python ``Reason`` enum whose
members are a subset of the schema's ``FailureReason`` (matched by
name), and some add a finer ``Problem`` (OCSP and CRLs). Whatever the
service, an error carries the same three things: the schema reason, a
short detail a person can read, and structured context for the audit
record. Its message, ``<reason>: <detail>``, is what the ``*_impl``
layer hands to :class:`services._runtime.boundary.CapabilityError` when
it crosses a capability boundary.
"""

from __future__ import annotations

import enum
from typing import Any


class ReasonedError(Exception):
    """A refusal or failure: a schema reason, a detail and context."""

    def __init__(self, reason: enum.Enum, detail: str,
                 **context: Any) -> None:
        # _value_, not value: the enum's value property is a Python
        # call, and an error is built on every refusal.
        super().__init__(f"{reason._value_}: {detail}")
        self.reason = reason
        self.detail = detail
        self.context = context
