"""The probe listener's life, seen from the Gunicorn master: bind, fork, supervise, stop.

The master binds the port in ``on_starting`` (a taken port stops the start with one
line), forks the listener in ``when_ready`` (no worker yet, one thread), and closes its own
copy of the socket so workers never inherit it. The listener process itself is
:class:`gunicorn_zdt.runtime.probe_server.Listener`. Stdlib only.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import select
import signal
import socket
import time
from typing import Any

from . import state
from .probe_server import Listener, ProbeConfig

__all__ = ["ListenerProcess", "bind", "spawn"]

_MASTER_SIGNALS: tuple[str, ...] = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1")
_MASTER_SIGNALS += ("SIGUSR2", "SIGTTIN", "SIGTTOU", "SIGWINCH")


def bind(host: str, port: int, *, successor: bool = False) -> socket.socket:
    """The listening socket, made in the master before the fork (so errors stop the start).

    ``SO_REUSEPORT`` lets a USR2 generation (``successor``) bind the same port while the old
    one drains. Anyone else finds the port taken, as Gunicorn's own listeners are: a socket
    without ``SO_REUSEPORT`` is bound first, to test it (EADDRINUSE when another listens).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if port and not successor:
        with socket.socket(family, socket.SOCK_STREAM) as test:
            test.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            test.bind((host, port))  # OSError(EADDRINUSE): another process listens there
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


def _usr2_successor() -> bool:
    """This master was exec'd by the master it replaces (SIGUSR2): it may share the port.

    Gunicorn passes the old master's pid in ``GUNICORN_PID`` to the new one, its child.
    """
    return os.environ.get("GUNICORN_PID", "") == str(os.getppid())


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
    """The master's side: bind early, fork, respawn with back-off, stop at exit.

    Supervised from the master's loop, as Gunicorn supervises its workers: a listener
    that died is noticed within one loop turn (about 1 s), logged once, and respawned
    after 1, 2, 4 ... 30 s (back to 1 s after a minute of good health). A pidfd (Linux
    >= 5.3) names the process itself, so the master never signals a pid that Gunicorn's
    ``waitpid(-1)`` already reaped and the kernel may have reused.
    """

    RESPAWN_MAX_SECONDS = 30.0
    HEALTHY_SECONDS = 60.0

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.pid = 0
        self._address: tuple[str, int] | None = None
        self._pidfd: int | None = None
        self._spawned_at = 0.0
        self._backoff = 0.0
        self._respawn_at = 0.0
        self._shared: state.SharedState | None = None
        self._config: ProbeConfig | None = None

    def bind(self, host: str, port: int) -> None:
        """Master, on_starting: a taken port or a bad address stops Gunicorn with one line."""
        if self.sock is not None or self.pid:
            return
        try:
            self.sock = bind(host, port, successor=_usr2_successor())
        except OSError as exc:
            taken = exc.errno == errno.EADDRINUSE
            raise RuntimeError(
                f"gunicorn-zdt: ZDT_PROBE_BIND={host}:{port}: cannot listen there "
                f"({exc.strerror or exc}"
                f"{': another process listens on it' if taken else ''}); pick a free port, "
                "e.g. ZDT_PROBE_BIND=0.0.0.0:8082, or stop the other server"
            ) from None
        # The port actually bound: with port 0 a respawn must come back on the same one.
        self._address = (host, int(self.sock.getsockname()[1]))

    def spawn(self, shared: state.SharedState, config: ProbeConfig) -> str | None:
        """Fork the listener if bound and not yet running; returns its ``host:port``."""
        sock = self.sock
        if sock is None or self.pid:
            return None
        self._shared, self._config = shared, config
        self.pid = spawn(sock, shared, config)
        self._spawned_at = time.monotonic()
        with contextlib.suppress(OSError, AttributeError):
            self._pidfd = os.pidfd_open(self.pid)
        host, port = sock.getsockname()[:2]
        sock.close()  # workers must not inherit it; the listener holds its own copy
        self.sock = None
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def supervise(self, log: Any) -> None:
        """Master loop: notice a dead listener, log it once, respawn it after a back-off."""
        if self._shared is None or self._config is None or self._address is None:
            return  # never started (no ZDT_PROBE_BIND)
        now = time.monotonic()
        if self.pid:
            if self._alive():
                return
            healthy = now - self._spawned_at >= self.HEALTHY_SECONDS
            self._backoff = (
                1.0 if healthy else min(max(1.0, self._backoff * 2), self.RESPAWN_MAX_SECONDS)
            )
            self._respawn_at = now + self._backoff
            log.error(
                "gunicorn-zdt: the probe listener (pid %s) exited; probes on its port fail "
                "until it is back: respawning in %g s",
                self.pid,
                self._backoff,
            )
            self._forget()
            return
        if now < self._respawn_at:
            return
        try:
            self.sock = bind(*self._address, successor=_usr2_successor())
        except OSError as exc:
            self._respawn_at = now + self._backoff
            log.warning("gunicorn-zdt: probe listener not respawned yet: %s", exc)
            return
        self.spawn(self._shared, self._config)
        self._shared.count_listener_restart()
        log.info("gunicorn-zdt: probe listener respawned (pid %s)", self.pid)

    def _alive(self) -> bool:
        if self._pidfd is not None:
            poller = select.poll()
            poller.register(self._pidfd, select.POLLIN)
            return not poller.poll(0)  # a pidfd turns readable when its process exits
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True

    def _forget(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
        self.pid, self._pidfd = 0, None

    def stop(self) -> None:
        """Master, on_exit: kill the listener if it still runs, and reap it."""
        if not self.pid:
            return
        if self._alive():
            with contextlib.suppress(ProcessLookupError, OSError):
                if self._pidfd is not None:
                    signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
                else:
                    os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
        self._forget()
        self._shared = None  # no respawn after exit
