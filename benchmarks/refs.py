"""Same-run references shared by the benchmarks (targets are ratios to these).

The machine changes between sessions, so every benchmark measures its floor in the same run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
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


def startup_env() -> dict[str, str]:
    """The environment for a timed start of a Python process: this one's, with the bytecode
    cache on.  An editable install run under PYTHONDONTWRITEBYTECODE (as in some sandboxes)
    recompiles every tracetui module on each start while pip compiled Textual's: a cost no
    installed console pays.  Start each measured program once, untimed, to write the caches."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


# A Textual app (BASE, built with ARGS) that prints, at its first frame (Ready), the wall ms
# since argv[1] (a time.monotonic() taken before its spawn) and its own CPU ms by then.
FIRST_FRAME = textwrap.dedent(
    """
    import resource, sys, time
    start = float(sys.argv[1])
    {setup}
    class Timed(Base):
        def on_ready(self):
            r = resource.getrusage(resource.RUSAGE_SELF)
            wall = (time.monotonic() - start) * 1000
            print(round(wall, 1), round((r.ru_utime + r.ru_stime) * 1000, 1), flush=True)
            self.exit()
    Timed({args}).run(headless=True, size=(120, 40))
    """
)
BARE_APP = FIRST_FRAME.format(setup="from textual.app import App as Base", args="")


def first_frame_once(code: str) -> tuple[float, float]:
    """(wall ms from spawn to Ready, the process's CPU ms by then) of one run of CODE."""
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-P", "-c", code, repr(start)],  # -P: the installed tracetui
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=startup_env(),
    )
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)
