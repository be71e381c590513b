"""x509 errors as they cross a capability boundary.

A thin adapter over :mod:`services._runtime.boundary`, which makes the
process's capability errors message-only: the peer reads exactly
``"<reason>: <detail>"`` and never a server-side traceback.
"""

from __future__ import annotations

from services._runtime.boundary import (
    CapabilityError,
    install,
    parse_remote,
)
from services.x509.errors import Reason, ServiceError

install()


def capability_error(reason: Reason, detail: str) -> CapabilityError:
    """An exception that reaches the peer as ``"<reason>: <detail>"``."""
    return CapabilityError(reason.value, detail.replace("\n", " ")[:200])


def from_service_error(err: ServiceError) -> CapabilityError:
    return capability_error(err.reason, err.detail)


def reason_of(exc: BaseException) -> tuple[str, str]:
    """``(reason, detail)`` from a remote capnp exception."""
    return parse_remote(exc)
