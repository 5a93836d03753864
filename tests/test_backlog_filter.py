"""The listener's SYN filter at the graceful stop, on real sockets (Linux).

At the stop the master drops new SYNs on every listening socket before the workers are
told to stop (gunicorn_zdt.runtime.backlog). Only a SYN that opens a connection may be
dropped: every other segment (the last ACK of a handshake already answered, a request)
must reach the socket, or a connection its client sees as open, and has sent a request
on, is reset when the listener shuts.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from gunicorn_zdt.runtime.backlog import drop_new_connections, listen_backlog
from tests.support import wait_until


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock
    sock.close()


def test_a_new_connection_is_dropped(listener: socket.socket) -> None:
    assert drop_new_connections(listener)
    client = socket.socket()
    client.settimeout(0.5)
    with client, pytest.raises(TimeoutError):  # dropped, not refused: the client retries
        client.connect(listener.getsockname())
    assert listen_backlog(listener) == 0


def test_a_queued_connection_is_still_served(listener: socket.socket) -> None:
    with socket.create_connection(listener.getsockname()) as client:
        client.sendall(b"GET / HTTP/1.1\r\n\r\n")
        wait_until(lambda: listen_backlog(listener) == 1, 2, "the connection queued")
        assert drop_new_connections(listener)
        accepted, _ = listener.accept()
        with accepted:
            accepted.settimeout(2)
            assert accepted.recv(64).startswith(b"GET / ")


def test_segments_that_are_not_a_new_syn_pass(listener: socket.socket) -> None:
    """The same program on an open connection: its ACK-flagged data segments arrive."""
    with socket.create_connection(listener.getsockname()) as client:
        accepted, _ = listener.accept()
        with accepted:
            assert drop_new_connections(accepted)
            client.sendall(b"request after the filter")
            accepted.settimeout(2)
            assert accepted.recv(64) == b"request after the filter"
