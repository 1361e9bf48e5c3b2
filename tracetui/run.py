"""``tracetui run``: run a Python program with function calls and log records traced.

    tracetui run [--trace NAME] [--functions GLOB ...] [--exclude GLOB ...] [--no-functions]
                 [--c-calls] [--hook auto|profile|evalframe|monitoring] [--logging [LEVEL]]
                 [--keep] -- python SCRIPT|-m MODULE [ARGS]

(also ``python -m tracetui.run ...``).  Tracing is attached from the program's first line: the
program runs with tracetui/_boot first on PYTHONPATH and its settings in TRACETUI_RUN, and that
directory's sitecustomize.py sets tracing up at interpreter startup (tracetui.core.pyboot).
Everything else is the program's own: its sys.argv, __main__, stdin/stdout/stderr, and its
exit status, which is this command's (a program killed by a signal kills this command with the
same signal).  Terminal signals (SIGINT, SIGQUIT) reach the program directly; SIGTERM and
SIGHUP sent to this command are passed on to it.

Events go to the trace NAME if it exists (started now if it is stopped, and stopped again at
the end), else to a new trace ``run-<pid>`` created and started here and stopped when the
program exits, so that its CTF directory is complete on disk when this command returns
(``--keep`` leaves it running).  A daemon is started if none answers, and stopped at the end
unless ``--keep``.  On a terminal, a last line on stderr says where the trace is.

Exit status: the program's; before the program starts, 2 for a usage error, 3 when no daemon
can be reached or started or the trace cannot be used, 126/127 when the program cannot be run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tracetui.core.client import rendezvous, spawn
from tracetui.core.errors import DaemonNotRunning, TraceError

EXIT_USAGE = 2
EXIT_TRACE = 3
# Buffers of a trace created here: function tracing is event-heavy (32 MiB per CPU: a
# program writing 100 MB/s of events on a loaded machine fills 8 MiB between two drains).
RUN_SUBBUF = "1M"
RUN_N_SUBBUF = "32"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``run`` on the CLI's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="run a Python program with its function calls and log records traced",
        description="Run a Python program with its function calls and log records traced. "
        + (__doc__.split("\n\n")[2] if __doc__ else ""),
    )
    _arguments(p)
    p.set_defaults(func=run)
    return p


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trace", metavar="NAME", help="record into this trace (created if missing)")
    p.add_argument("--functions", nargs="+", default=[], metavar="GLOB",
                   help="trace only functions whose module.qualname matches a GLOB")  # fmt: skip
    p.add_argument("--exclude", nargs="+", default=[], metavar="GLOB",
                   help="do not trace functions whose module.qualname matches a GLOB")  # fmt: skip
    p.add_argument("--no-functions", action="store_true", help="no function events")
    p.add_argument("--c-calls", action="store_true", help="also record calls into C functions")
    p.add_argument("--hook", choices=("auto", "profile", "evalframe", "monitoring"),
                   default="auto", help="how calls are seen: auto (profile on 3.11, "
                   "monitoring on 3.12+), or evalframe (3.11, 3.12): cheaper, "
                   "no --c-calls")  # fmt: skip
    p.add_argument("--logging", nargs="?", const="DEBUG", default=None, metavar="LEVEL",
                   help="record logging records at LEVEL and above (default DEBUG) that the "
                   "program's loggers let through")  # fmt: skip
    p.add_argument(
        "--keep", action="store_true", help="leave the trace (and a daemon started here) running"
    )
    p.add_argument("--runtime-dir", metavar="DIR", default=None, help=argparse.SUPPRESS)
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- python SCRIPT|-m MODULE ...")


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"tracetui run: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    cmd = list(args.command)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        return _fail("give the program to run after --, e.g. tracetui run -- python app.py")
    level = None
    if args.logging is not None:
        from tracetui.core.logbridge import level_of

        try:
            level = level_of(args.logging)
        except ValueError as e:
            return _fail(str(e))
    if args.hook == "evalframe" and args.c_calls:
        return _fail("--c-calls needs the profile or monitoring hook, not evalframe")
    for glob in (*args.functions, *args.exclude):
        if not glob or "\0" in glob:
            return _fail(f"{glob!r} is not a function glob")
    try:
        from tracetui.core import cmarker

        if not args.no_functions and not cmarker.available():
            return _fail("function tracing needs tracetui.core._ttpy, which is not built")
        mod = cmarker._ttpy
        if mod is not None and args.hook != "auto":
            have = {"monitoring" if mod.BACKEND == "monitoring" else "profile"}
            have |= {"evalframe"} if mod.HAVE_EVALFRAME else set()
            if args.hook not in have:
                return _fail(f"the {args.hook} hook is not available with this Python "
                             f"({', '.join(sorted(have))} is)")  # fmt: skip
    except ImportError as e:
        return _fail(f"tracing is not available in this installation ({e})")

    directory = rendezvous.runtime_dir(getattr(args, "runtime_dir", None))
    daemon = None
    try:
        session = _Session(directory, args.trace)
    except DaemonNotRunning:
        try:
            daemon = spawn.spawn_daemon(directory, detach=args.keep)
            session = _Session(directory, args.trace)
        except TraceError as e:
            return _fail(f"cannot start a daemon: {e}", EXIT_TRACE)
    except TraceError as e:
        return _fail(str(e), EXIT_TRACE)
    try:
        try:
            session.begin()
        except TraceError as e:
            return _fail(str(e), EXIT_TRACE)
        config = {
            "functions": not args.no_functions,
            "include": args.functions,
            "exclude": args.exclude,
            "c_calls": args.c_calls,
            "hook": args.hook,
            "logging": level,
        }
        status = _run_program(cmd, directory, config)
    finally:
        try:
            session.end(keep=args.keep)
        except TraceError as e:
            _fail(f"could not stop trace {session.name}: {e}", EXIT_TRACE)
        if daemon is not None and not args.keep:
            spawn.stop_daemon(daemon)
    if status < 0:
        _die_like(-status)
    return status


class _Session:
    """The trace this run records into, on one control connection."""

    def __init__(self, directory: Path, name: str | None) -> None:
        from tracetui.core.client import Client

        self.client = Client(str(directory))
        self.name = name or f"run-{os.getpid()}"
        self.started_here = False

    def begin(self) -> None:
        c = self.client
        names = {e.name for e in c.ls("")}
        if self.name not in names:
            c.mkdir(self.name)
            c.write(f"{self.name}/main/subbuf_size", RUN_SUBBUF)
            c.write(f"{self.name}/main/n_subbuf", RUN_N_SUBBUF)
        if c.read(f"{self.name}/start").strip() != "1":
            c.write(f"{self.name}/start", "1")
            self.started_here = True

    def end(self, keep: bool) -> None:
        try:
            if self.started_here and not keep:
                # Stopping flushes every buffer and completes the CTF directory on disk.
                self.client.write(f"{self.name}/start", "0")
            if sys.stderr.isatty():
                # Where the events went; on a terminal only: piped, stderr is the program's.
                out = self.client.read(f"{self.name}/output").strip()
                state = "still recording" if keep or not self.started_here else "complete"
                print(f"tracetui run: trace {self.name} ({state}) in {out}", file=sys.stderr)
        finally:
            self.client.close()


def _run_program(cmd: list[str], directory: Path, config: dict[str, Any]) -> int:
    """Run CMD traced; its return code (negative: the signal that killed it)."""
    import tracetui

    boot = str(Path(__file__).resolve().parent / "_boot")
    pkg_parent = str(Path(tracetui.__file__).resolve().parent.parent)
    env = dict(os.environ)
    old = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (boot, pkg_parent, old) if p)
    env["TRACETUI_RUN_PATH"] = pkg_parent
    env["TRACETUI_RUN"] = json.dumps(config)
    env[rendezvous.ENV] = str(directory)
    # The terminal's SIGINT/SIGQUIT go to the program (same process group): we wait for it.
    ignored = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGQUIT)}
    try:
        try:
            proc = subprocess.Popen(cmd, env=env, restore_signals=True,
                                    preexec_fn=_restore_default_signals)  # fmt: skip
        except OSError as e:
            print(f"tracetui run: cannot run {cmd[0]!r}: {e.strerror}", file=sys.stderr)
            return 127 if isinstance(e, FileNotFoundError) else 126

        def forward(signum: int, _frame: object) -> None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)

        forwarded = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)}
        try:
            while True:
                try:
                    return proc.wait()
                except InterruptedError:
                    continue
        finally:
            for s, h in forwarded.items():
                signal.signal(s, h)
    finally:
        for s, h in ignored.items():
            signal.signal(s, h)


def _restore_default_signals() -> None:
    for s in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(s, signal.SIG_DFL)


def _die_like(signum: int) -> None:
    """Exit by SIGNUM, as the program did (its status is ours); no second core dump."""
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(ValueError, OSError):  # SIGKILL/SIGSTOP keep theirs anyway
        signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tracetui run", description=__doc__.split("\n\n")[0])
    _arguments(p)
    args = p.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
