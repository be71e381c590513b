"""Child processes of the harness that cannot outlive it.

QEMU, pebble and challtestsrv are started by the harness and stopped by
it on every normal path. If the harness itself is killed outright
(SIGKILL, or a crash before its ``finally`` blocks run), Linux's
parent-death signal still ends them: :func:`die_with_parent` is the
``preexec_fn`` that asks for it (prctl ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG): {os.strerror(err)}")
