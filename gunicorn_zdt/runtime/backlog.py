"""The listening sockets' accept queue, seen from the master (Linux TCP).

A connection the kernel accepted into the listen backlog after every worker stopped
accepting is reset when the last worker exits (gunicorn #3397). The drain counts the queue
(it never ends while one waits) and the graceful stop holds the workers until it is
served, with new SYNs dropped meanwhile. Stdlib only.
"""

from __future__ import annotations

import ctypes
import socket
import struct

__all__ = ["drop_new_connections", "listen_backlog"]

# struct tcp_info: 8 one-byte fields, then u32 rto, ato, snd_mss, rcv_mss, unacked: on a
# listening socket Linux reports the accept queue's length in tcpi_unacked.
_TCPI_UNACKED = 24
# A classic BPF socket filter of one instruction, "ret 0" (BPF_RET | BPF_K, k=0): attached to a
# listening socket it drops every SYN (the client retries), while connections already in
# the accept queue are sockets of their own and are served as usual.
_SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
_DROP_EVERY_PACKET = struct.pack("<HBBI", 0x06, 0, 0, 0)


def drop_new_connections(sock: socket.socket) -> bool:
    """Make ``sock`` drop every new SYN, leaving its accept queue to be served (Linux)."""
    code = ctypes.create_string_buffer(_DROP_EVERY_PACKET)
    program = struct.pack("@HP", 1, ctypes.addressof(code))  # struct sock_fprog
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
