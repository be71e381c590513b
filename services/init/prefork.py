"""What capos-init keeps out of the modules it forks the services from.

capos-init imports every service's modules once and forks the services
from itself (``system.spawn``), so whatever that import set loads, every
service carries and every boot pays for first. Two standard-library
modules would load Debian's OpenSSL 3.0 (``libssl``, ``libcrypto``) into
it without any service needing it there:

- ``ssl``: asyncio imports it at import time (``base_events``,
  ``selector_events``, ``sslproto``), as do ``http.client`` and
  ``urllib.request``, each inside ``try: ... except ImportError``. No
  service runs TLS through asyncio or the standard library's HTTP
  clients: the gateway and the stapling endpoint serve TLS with
  pyOpenSSL, over the OpenSSL that pyca's wheel carries. The one user,
  the ACME client (``services/acme/transport.py``), imports ``ssl``
  itself, on its first call, in the acme process alone
  (``services/acme/deferred_impl.py``).
- ``_hashlib``: hashlib's OpenSSL backend. Without it hashlib and hmac
  use CPython's built-in SHA-2, SHA-3, BLAKE2, SHA-1 and MD5, which give
  the same digests; what the services hash is certificates, keys and
  short strings.

Loading that OpenSSL and initialising it, and building the ``ssl``
module's enums, took about 0.4 s of a TCG boot and 10,000 TCG translation
blocks (QEMU's ``info jit``, one import at a time in the guest).

:func:`hold` makes these modules unimportable while capos-init imports;
the modules that try them go on without (asyncio then refuses an
``ssl=`` argument with "stdlib ssl module not available", a clear error
should a service ever pass one). :func:`release` lifts the hold before
the fork, so a service that imports ``ssl`` afterwards gets it.
"""

from __future__ import annotations

import sys

#: Standard-library modules kept out of capos-init's import set.
HELD = ("ssl", "_hashlib")


def hold() -> None:
    """Make :data:`HELD` unimportable (``import`` raises ImportError)
    until :func:`release`. Must run before anything imports them."""
    for name in HELD:
        if name in sys.modules and sys.modules[name] is not None:
            raise RuntimeError(f"{name} is already imported; hold() must "
                               "run before the imports it keeps it from")
        sys.modules[name] = None  # type: ignore[assignment]


def release() -> None:
    """Let :data:`HELD` be imported again (by whoever imports it next)."""
    for name in HELD:
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]
