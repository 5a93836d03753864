"""Stack dumps of requests about to be cut: armed in each worker, triggered by the master.

Shortly before ``graceful_timeout`` expires (and when Gunicorn's ``timeout`` kills a hung
worker) the master sends :data:`DUMP_SIGNAL` to each worker still serving a request; the
worker writes the Python stack of every thread to its stderr (``faulthandler``: works
even while the thread is stuck in C code) and, under gevent, of every greenlet too (a
request waiting in a greenlet is not on any thread's stack). The request itself goes on.

Why SIGUSR2: Gunicorn 27's workers install handlers for TERM, QUIT, INT, ABRT (the
timeout), USR1 (reopen logs) and WINCH (ignored, logged); they reset HUP, USR2 and CHLD to
the default and no Gunicorn process ever sends USR2 to a worker (the master uses it for
its own re-exec). SIGWINCH is out: a terminal sends it to the whole foreground process
group on every resize. The master only signals a worker whose slot says the handler is
in place (a worker still booting would die of USR2's default action). Stdlib only.
"""

from __future__ import annotations

import faulthandler
import signal
import sys
from typing import Any

__all__ = ["DUMP_SIGNAL", "arm"]

DUMP_SIGNAL = signal.SIGUSR2


def arm() -> bool:
    """Worker, after Gunicorn set up its signals (``post_worker_init``): dump on the signal.

    False (nothing changed) when the app installed its own handler for the signal, or
    stderr has no file descriptor to write to: the master then sends no signal.
    """
    if signal.getsignal(DUMP_SIGNAL) not in (signal.SIG_DFL, None):
        return False  # the app's own SIGUSR2 handler wins
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    greenlets = _gevent_patched()
    if greenlets:
        signal.signal(DUMP_SIGNAL, _dump_greenlets)  # faulthandler chains to it
    # chain only to our handler: chained to USR2's default action, the worker would die
    faulthandler.register(DUMP_SIGNAL, file=sys.stderr, all_threads=True, chain=greenlets)
    return True


def _gevent_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey is not None and monkey.is_module_patched("threading"))


def _dump_greenlets(signum: int, frame: Any) -> None:
    """Every greenlet's stack (runs in the hub's thread, between callbacks)."""
    from gevent.util import format_run_info

    lines = format_run_info(thread_stacks=False, greenlet_stacks=True)
    sys.stderr.write("gunicorn-zdt: greenlet stacks\n" + "\n".join(lines) + "\n")
    sys.stderr.flush()
