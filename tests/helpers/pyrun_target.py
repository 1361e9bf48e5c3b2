"""A program with a known call graph, run under `tracetui run` by tests/test_pyrun.py.

    python pyrun_target.py PIDFILE [MODE]

MODE "full" (default): in the main thread main() calls branch(5) twice (leaf 10 times),
consumes gen() (3 yields: 4 resumptions), calls failing() (raises ValueError, caught); a
thread runs worker() (leaf 3 times); a forked child runs child_work() (leaf 2 times) and
leaves with os._exit(0); a multiprocessing "spawn" child runs mp_work() (leaf 4 times).  It
logs one record per level on logger "target" and one on "shown" (a handler of its own),
prints to stdout and stderr, and exits 7.
PIDFILE gets "role pid tid" lines.  MODE "kill": some calls, then SIGKILL to itself; "exit":
some calls, then os._exit(5) from inside nested calls.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading

log = logging.getLogger("target")
log.setLevel(logging.DEBUG)
# A logger with a handler of its own that shows the caller: tracing must not change it.
shown = logging.getLogger("shown")
shown.propagate = False
_h = logging.StreamHandler(sys.stderr)
_h.setFormatter(logging.Formatter("%(filename)s:%(lineno)d %(funcName)s %(levelname)s %(message)s"))
shown.addHandler(_h)


def note(role: str) -> None:
    with open(sys.argv[1], "a") as f:
        f.write(f"{role} {os.getpid()} {threading.get_native_id()}\n")


def leaf(i: int) -> int:
    return i * 2


def branch(n: int) -> int:
    total = 0
    for i in range(n):
        total += leaf(i)
    return total


def gen():  # type: ignore[no-untyped-def]
    yield 1
    yield 2
    yield 3


def failing() -> None:
    raise ValueError("expected")


def worker() -> None:
    note("thread")
    for i in range(3):
        leaf(i)


def child_work() -> None:
    note("fork")
    leaf(1)
    leaf(2)


def mp_work(pidfile: str) -> None:
    sys.argv[1:2] = [pidfile]
    note("mp")
    for i in range(4):
        leaf(i)


def nested_exit(depth: int) -> None:
    if depth == 0:
        os._exit(5)
    nested_exit(depth - 1)


def main() -> int:
    mode = sys.argv[2] if len(sys.argv) > 2 else "full"
    note("main")
    if mode == "kill":
        branch(3)
        log.warning("about to die")
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "exit":
        branch(3)
        nested_exit(3)
    print("branch", branch(5) + branch(5))
    print("gen", sum(gen()))
    try:
        failing()
    except ValueError:
        print("caught")
    # Fork before starting a thread: CPython 3.12 warns about forking a multi-threaded
    # process, and a joined thread may still exist for the kernel for a moment.
    pid = os.fork()
    if pid == 0:
        child_work()
        os._exit(0)
    os.waitpid(pid, 0)
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    ctx = multiprocessing.get_context("spawn")
    p = ctx.Process(target=mp_work, args=(sys.argv[1],))
    p.start()
    p.join()
    log.debug("debug %d", 1)
    log.info("info %d", 2)
    log.warning("warning %s", "three")
    log.error("error")
    shown.warning("shown %(n)d", {"n": 5})
    print("to stderr", file=sys.stderr)
    return 7


if __name__ == "__main__":
    sys.exit(main())
