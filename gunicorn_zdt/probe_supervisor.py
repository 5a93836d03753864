"""The probe listener's life, seen from the Gunicorn master: bind, fork, supervise, stop.

The master binds the port in ``on_starting`` (a taken port stops the start with one
line), forks the listener in ``when_ready`` (no worker yet, one thread), and closes its own
copy of the socket so workers never inherit it. The listener process itself is
:class:`gunicorn_zdt.probe_server.Listener`. Stdlib only.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket

from . import state
from .probe_server import Listener, ProbeConfig

__all__ = ["ListenerProcess", "bind", "spawn"]

_MASTER_SIGNALS: tuple[str, ...] = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1")
_MASTER_SIGNALS += ("SIGUSR2", "SIGTTIN", "SIGTTOU", "SIGWINCH")


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, made in the master before the fork (so errors stop the start).

    ``SO_REUSEPORT`` lets a USR2 generation bind the same port while the old one drains.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def spawn(sock: socket.socket, shared: state.SharedState, config: ProbeConfig) -> int:
    """Fork the listener (call in the master while it has one thread); returns its pid."""
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        _become_listener(sock, config)
        Listener(sock, shared, config).serve()
    except BaseException as exc:  # never fall back into the master's code
        code = 1
        with contextlib.suppress(Exception):
            os.write(2, f"gunicorn-zdt: probe listener failed: {exc!r}\n".encode())
    finally:
        os._exit(code)


def _become_listener(sock: socket.socket, config: ProbeConfig) -> None:
    for name in _MASTER_SIGNALS:
        signal.signal(getattr(signal, name), signal.SIG_IGN)  # meant for the master
    for sig in (signal.SIGCHLD, signal.SIGALRM):
        signal.signal(sig, signal.SIG_DFL)
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)
    _die_with_parent()
    if os.getppid() != config.master_pid:  # the master died before prctl took effect
        os._exit(0)
    keep = sock.fileno()
    os.closerange(3, keep)  # the app's listeners, the master's pipes, log files
    os.closerange(keep + 1, 65536)
    with contextlib.suppress(ImportError):
        import setproctitle  # type: ignore[import-not-found]

        setproctitle.setproctitle("gunicorn: zdt probe listener")


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


class ListenerProcess:
    """The master's side of the listener: bind early, fork once, notice its death, stop it.

    One per master (``LISTENER``); it outlives a SIGHUP, which re-runs the config module
    but not this one.
    """

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.pid = 0
        self._reported = False

    def bind(self, host: str, port: int) -> None:
        """Master, on_starting: a taken port or a bad address stops Gunicorn with one line."""
        if self.sock is not None:
            return
        try:
            self.sock = bind(host, port)
        except OSError as exc:
            raise RuntimeError(
                f"gunicorn-zdt: ZDT_PROBE_BIND={host}:{port}: cannot listen there "
                f"({exc.strerror or exc}); pick a free port, e.g. ZDT_PROBE_BIND=0.0.0.0:8081"
            ) from None

    def spawn(self, shared: state.SharedState, config: ProbeConfig) -> str | None:
        """Fork the listener if bound and not yet running; returns its ``host:port``."""
        sock = self.sock
        if sock is None or self.pid:
            return None
        self.pid = spawn(sock, shared, config)
        host, port = sock.getsockname()[:2]
        sock.close()  # workers must not inherit it; the listener holds its own copy
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def newly_dead(self) -> bool:
        """True once, the first time the master sees the listener gone."""
        if not self.pid or self._reported:
            return False
        try:
            os.kill(self.pid, 0)
            return False
        except ProcessLookupError:
            self._reported = True
            return True
        except PermissionError:
            return False

    def stop(self) -> None:
        pid, self.pid = self.pid, 0
        if not pid:
            return
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


LISTENER = ListenerProcess()
