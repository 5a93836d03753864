"""The listening sockets' accept queue, seen from the master (Linux TCP).

A connection the kernel accepted into the listen backlog after every worker stopped
accepting is reset when the last worker exits (gunicorn #3397). The drain counts the queue
(it never ends while one waits) and the graceful stop holds the workers until it is
served, with new SYNs dropped meanwhile. Only a SYN that opens a connection is dropped:
the last ACK of a handshake the kernel already answered, and the request after it, still
reach the socket, so that connection joins the queue and is served instead of being
half-open when the listener shuts (its client has sent the request by then, and a proxy
does not retry a request it sent). Stdlib only.
"""

from __future__ import annotations

import ctypes
import socket
import struct

__all__ = ["drop_new_connections", "listen_backlog"]

# struct tcp_info: 8 one-byte fields, then u32 rto, ato, snd_mss, rcv_mss, unacked: on a
# listening socket Linux reports the accept queue's length in tcpi_unacked.
_TCPI_UNACKED = 24
# A classic BPF socket filter (struct sock_filter: code, jt, jf, k). Linux runs a TCP
# listener's filter on each segment for it with the TCP header at offset 0: drop a segment
# whose flags are SYN without ACK (a new connection; its client retries the SYN, and is
# refused once the listeners shut), keep every other.
_SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
_TCP_SYN, _TCP_ACK = 0x02, 0x10
_DROP_NEW_SYNS = b"".join(
    struct.pack("=HBBI", code, jt, jf, k)
    for code, jt, jf, k in (
        (0x30, 0, 0, 13),  # ldb [13]: the TCP flags byte
        (0x54, 0, 0, _TCP_SYN | _TCP_ACK),  # and #(SYN|ACK)
        (0x15, 0, 1, _TCP_SYN),  # jeq #SYN: a new connection, drop it; else keep
        (0x06, 0, 0, 0),  # ret #0: drop
        (0x06, 0, 0, 0xFFFFFFFF),  # ret #-1: keep the whole segment
    )
)


def drop_new_connections(sock: socket.socket) -> bool:
    """Make ``sock`` drop every new SYN, leaving its accept queue to be served (Linux)."""
    code = ctypes.create_string_buffer(_DROP_NEW_SYNS)
    program = struct.pack("@HP", len(_DROP_NEW_SYNS) // 8, ctypes.addressof(code))  # sock_fprog
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, program)  # the kernel copies it
    except OSError:
        return False
    return True


def listen_backlog(sock: socket.socket) -> int:
    """Connections waiting in ``sock``'s accept queue (Linux TCP; 0 where unknown)."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not hasattr(socket, "TCP_INFO"):
        return 0
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except OSError:
        return 0
    return int(struct.unpack_from("<I", info, _TCPI_UNACKED)[0]) if len(info) >= 28 else 0
