"""Loading the project's Cap'n Proto schemas.

The only place that knows where ``schema/`` lives. Everything else asks
for a loaded module by name: :func:`pki` for the proposal's types and
interfaces, :func:`manifest` for the boot manifest, :func:`runtime` for
the service-host plumbing between capos-init and the services.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import capnp

capnp.remove_import_hook()

#: The schema directory. In the image it sits beside ``services/`` under
#: ``/opt/capos``; on the host it is the repository's ``schema/``.
SCHEMA_DIR = Path(
    os.environ.get(
        "CAPOS_SCHEMA_DIR",
        Path(__file__).resolve().parent.parent.parent / "schema",
    )
)


@functools.cache
def load(name: str) -> Any:
    """Load ``schema/<name>.capnp`` once and return the module."""
    path = SCHEMA_DIR / f"{name}.capnp"
    if not path.is_file():
        raise FileNotFoundError(f"schema {name!r} not found at {path}")
    return capnp.load(str(path), imports=[str(SCHEMA_DIR)])


def pki() -> Any:
    """The certificate, TLS and CT schema (``schema/pki.capnp``)."""
    return load("pki")


def manifest() -> Any:
    """The boot manifest schema (``schema/manifest.capnp``)."""
    return load("manifest")


def runtime() -> Any:
    """Service-host plumbing (``schema/runtime.capnp``)."""
    return load("runtime")
