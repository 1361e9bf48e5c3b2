"""Same-run references shared by the benchmarks (targets are ratios to these).

The machine changes between sessions, so every benchmark measures its floor in the same run.
"""

from __future__ import annotations

import os
import socket
import time


def raw_netlink_rtt_us(n: int) -> list[float]:
    """Round trips of a 20-byte datagram to an echoing child process on NETLINK_USERSOCK."""
    a = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 2)
    b = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 2)
    a.bind((0, 0))
    b.bind((0, 0))
    port_b = b.getsockname()[0]
    msg = (20).to_bytes(4, "little") + bytes(16)
    child = os.fork()
    if child == 0:
        try:
            for _ in range(n):
                data, addr = b.recvfrom(4096)
                b.sendto(data, addr)
        finally:
            os._exit(0)
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        a.sendto(msg, (port_b, 0))
        a.recv(4096)
        out.append((time.perf_counter_ns() - t0) / 1000)
    os.waitpid(child, 0)
    a.close()
    b.close()
    return out
