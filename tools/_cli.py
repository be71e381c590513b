"""Command-line plumbing shared by the host tools (``tools.*``,
``image.*``): a closed stdout pipe ends a command quietly.

``python -m tools.verify ... | head -1`` closes the pipe while the
command is still writing. Python then raises ``BrokenPipeError`` (it
ignores ``SIGPIPE``) and, left alone, prints a traceback. Restoring the
default ``SIGPIPE`` action is not an option here: the same processes
write to sockets (QMP, the serial console, pebble), where the signal
would kill them silently. :func:`pipe_safe` catches the error at the top
of ``main`` only when stdout is the pipe that went away, and exits with
128 + SIGPIPE as a shell reports it.
"""

from __future__ import annotations

import functools
import os
import select
import signal
import sys
from collections.abc import Callable
from typing import ParamSpec

P = ParamSpec("P")
EXIT_PIPE = 128 + signal.SIGPIPE


def stdout_gone() -> bool:
    """True when stdout is a pipe or socket whose reader has gone."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False  # replaced by a test harness: no descriptor
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(ev & select.POLLERR for _, ev in poller.poll(0))


def pipe_safe(main: Callable[P, int]) -> Callable[P, int]:
    """Wrap ``main``: if stdout's reader goes away, exit quietly.

    Any other ``BrokenPipeError`` (a socket) propagates unchanged.
    """

    @functools.wraps(main)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> int:
        try:
            code = main(*args, **kwargs)
            sys.stdout.flush()
            return code
        except BrokenPipeError:
            if not stdout_gone():
                raise
            # Python flushes stdout again at exit; point it at /dev/null
            # so that flush has nowhere to fail.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            return EXIT_PIPE

    return wrapper
