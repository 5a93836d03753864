"""A pod network in one process: a TCP relay that delays every byte, FIN and reset.

On 127.0.0.1 a FIN reaches the proxy within microseconds, so the upstream keep-alive race
(the app closes an idle connection while the proxy sends a request on it) almost never
shows; in a cluster the FIN and the request cross on the wire for a one-way delay. The
relay restores that: each direction is forwarded ``delay_seconds`` later, in order, a
half-close as a half-close and a reset as a reset.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import struct
import threading
import time

_EOF = b""
_RESET = None


class DelayRelay:
    """127.0.0.1:``port`` -> 127.0.0.1:``target``, ``delay_seconds`` each way."""

    def __init__(self, target: int, delay_seconds: float) -> None:
        self.target = target
        self.delay = delay_seconds
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.port = self.sock.getsockname()[1]
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self.sock.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(("127.0.0.1", self.target), timeout=5)
                up.settimeout(None)
            except OSError:
                _reset(down)
                continue
            self._socks += [down, up]
            self._pipe(down, up)
            self._pipe(up, down)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        q: queue.Queue[tuple[float, bytes | None]] = queue.Queue()

        def read() -> None:
            while True:
                try:
                    data = src.recv(65536)
                except OSError:
                    q.put((time.monotonic() + self.delay, _RESET))
                    return
                q.put((time.monotonic() + self.delay, data))
                if not data:
                    return

        def write() -> None:
            while True:
                due, data = q.get()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)  # the wire's delay, per item, in order
                try:
                    if data is _RESET:
                        _reset(dst)
                        with contextlib.suppress(OSError):
                            src.close()
                        return
                    if data == _EOF:
                        dst.shutdown(socket.SHUT_WR)
                        return
                    dst.sendall(data)
                except OSError:
                    _reset(src)
                    return

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for s in self._socks:
            with contextlib.suppress(OSError):
                s.close()


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
