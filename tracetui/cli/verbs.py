"""The ``tracetui`` command line: the namespace verbs, the daemon, and the other tools' verbs.

This module owns argument parsing, output formats (text, ``--json``), and exit codes. It talks
to the daemon only through :class:`tracetui.core.client.Client`, and keeps its imports light so
that each command starts fast (no pyroute2, no cffi, no Textual unless the verb needs them).

Exit codes:
  0  success
  1  the daemon refused the operation (the sentence says why; --json adds errno and code)
  2  usage error (bad arguments)
  3  no daemon answers in the runtime directory
  4  the daemon could not be reached properly (timeout, protocol mismatch, squatted port)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tracetui import __version__

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NO_DAEMON = 3
EXIT_COMM = 4

EPILOG = """\
exit codes: 0 success, 1 refused by the daemon, 2 usage error, 3 no daemon answers,
4 the daemon could not be reached properly (timeout, protocol mismatch, squatted port).

the debugfs-style flow (traces and channels are directories, settings are files):
  tracetui daemon --detach
  tracetui mkdir mytrace; tracetui mkdir mytrace/processes
  tracetui write mytrace/processes/subbuf_size 256K; tracetui write mytrace/processes/n_subbuf 8
  tracetui write mytrace/processes/flight 1; tracetui write mytrace/processes/allocate 1
  tracetui write mytrace/filter 0; tracetui write mytrace/filter sched_switch
  tracetui write mytrace/processes/filter proc_exec; tracetui write mytrace/start 1
"""


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Options accepted both before and after the verb (after it they must not reset defaults)."""
    default: Any = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--runtime-dir",
        metavar="DIR",
        default=default,
        help="the daemon instance to use (default: $TRACETUI_RUNTIME_DIR, else the per-user one)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="machine-readable output (one JSON document on stdout)",
    )


@dataclass(frozen=True)
class Verb:
    """One subcommand: ``tracetui NAME ...``.

    A verb is either run by ``run`` here, with its arguments added by ``arguments``, or
    provided by ``module`` (an importable module with ``add_parser(subparsers)`` and
    ``run(args) -> int``), imported only when the command line may need it.  To add a verb:
    one row in :data:`VERBS` (and, for a large one, a module of its own under tracetui/cli/).
    """

    name: str
    help: str = ""
    run: Callable[[argparse.Namespace], int] | None = None
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    module: str | None = None


_VALUE_OPTIONS = {"--runtime-dir", "--layout", "--relay"}


def _verb_of(argv: Sequence[str]) -> str | None:
    """The verb word of ARGV (None for the console), without parsing: see build_parser."""
    skip = False
    for tok in argv:
        if skip:
            skip = False
        elif tok in _VALUE_OPTIONS:
            skip = True
        elif tok in ("-h", "--help"):
            return "--help"
        elif not tok.startswith("-"):
            return tok
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; the verbs of other modules are imported only when ARGV may need them.

    Importing the trace reader for `dump` costs more than a whole `tracetui read`, so for the
    namespace verbs those verbs get a light placeholder (still listed in --help).
    """
    p = argparse.ArgumentParser(
        prog="tracetui",
        description="A user-space tracer with a keyboard-driven console. With no verb, "
        "opens the console.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(p, top=True)
    p.add_argument("--version", action="version", version=f"tracetui {__version__}")
    p.add_argument("--demo", action="store_true", help="console: also run a demo workload")
    p.add_argument("--layout", metavar="NAME|PATH", help="console: restore a saved session layout")
    p.add_argument(
        "--keep-daemon",
        action="store_true",
        help="console: leave the daemon it started running on exit",
    )
    p.add_argument("--history", type=int, metavar="N", help="console: events kept per live view")
    p.add_argument("--relay", action="append", metavar="net://HOST[:PORT]",
                   help="console: list this lttng-relayd's live sessions in the tree")
    sub = p.add_subparsers(dest="verb", metavar="VERB")

    wanted = _verb_of(sys.argv[1:] if argv is None else argv)
    for v in VERBS:
        if v.module is None:
            assert v.run is not None
            sp = sub.add_parser(
                v.name,
                help=v.help,
                description=v.help,
                epilog=EPILOG.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
            _common(sp, top=False)
            sp.set_defaults(func=v.run)
            if v.arguments is not None:
                v.arguments(sp)
        elif wanted in (v.name, "--help", None):
            _add_guarded(sub, v.name, v.module)
        else:
            sub.add_parser(v.name, help=f"see `tracetui {v.name} --help`")
    return p


def _add_guarded(sub: Any, name: str, module: str) -> None:
    """Add a verb another part of tracetui provides, if that part is installed."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        reason = f"`tracetui {name}` is not available in this installation ({e})"
        sp = sub.add_parser(name, help=f"(unavailable: {e})", description=reason)
        sp.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        sp.set_defaults(func=lambda _args: _fail_plain(reason))
        return
    sp = mod.add_parser(sub)
    # The verb's own options win; the common ones are added only where it lacks them.
    existing = {a for action in sp._actions for a in action.option_strings}
    if "--runtime-dir" not in existing:
        sp.add_argument(
            "--runtime-dir", metavar="DIR", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    if "--json" not in existing:
        sp.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    sp.set_defaults(func=mod.run)


def _fail_plain(message: str) -> int:
    print(f"tracetui: {message}", file=sys.stderr)
    return EXIT_USAGE


# ------------------------------------------------------------------------------ verbs


def _client(args: argparse.Namespace) -> Any:
    from tracetui.core.client import Client

    return Client(args.runtime_dir)


def _out(args: argparse.Namespace, doc: object, text: str | None) -> None:
    if args.json:
        print(json.dumps(doc))
    elif text:
        print(text)


def _entry_doc(e: Any, path: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"name": e.name, "kind": e.kind, "writable": e.writable}
    if path is not None:
        d["path"] = path
    return d


def _join(parent: str, name: str) -> str:
    parent = parent.strip("/")
    return f"{parent}/{name}" if parent else name


def cmd_ls(args: argparse.Namespace) -> int:
    with _client(args) as c:
        if not args.recursive:
            entries = c.ls(args.path)
            lines = [e.name + ("/" if e.kind == "dir" else "") for e in entries]
            _out(args, [_entry_doc(e) for e in entries], "\n".join(lines))
            return EXIT_OK
        docs: list[dict[str, Any]] = []
        lines = []

        def walk(path: str) -> None:
            for e in c.ls(path):
                full = _join(path, e.name)
                docs.append(_entry_doc(e, full))
                lines.append(full + ("/" if e.kind == "dir" else ""))
                if e.kind == "dir":
                    walk(full)

        walk(args.path)
        _out(args, docs, "\n".join(lines))
    return EXIT_OK


def _each_path(verb: str) -> Callable[[argparse.Namespace], int]:
    """``mkdir``/``rmdir``: the client's VERB on every PATH, in order."""

    def run(args: argparse.Namespace) -> int:
        with _client(args) as c:
            for path in args.paths:
                getattr(c, verb)(path)
        _out(args, {"ok": True, "paths": args.paths}, None)
        return EXIT_OK

    return run


cmd_mkdir = _each_path("mkdir")
cmd_rmdir = _each_path("rmdir")


def cmd_read(args: argparse.Namespace) -> int:
    with _client(args) as c:
        value = c.read(args.path)
    doc: dict[str, object] = {"path": args.path, "value": value}
    if args.json:
        doc.update(_structured(args.path, value))
    _out(args, doc, value)
    return EXIT_OK


def _structured(path: str, value: str) -> dict[str, object]:
    """For --json: the files whose text has a structure, parsed (the text stays in "value")."""
    name = path.strip("/").rsplit("/", 1)[-1]
    if name == "stats":
        from dataclasses import asdict

        from tracetui.core.model.stats import parse_stats

        return {"stats": {label: asdict(st) for label, st in parse_stats(value).items()}}
    if name == "markers" and path.strip("/") == "markers":
        from tracetui.core.model.markers import parse_marker_lines

        return {
            "markers": [
                {"id": i, "name": name, "format": fmt} for i, name, fmt in parse_marker_lines(value)
            ]
        }
    if name == "filter":
        return {"rules": [r for r in value.splitlines() if r and r != "0"]}
    return {}


def cmd_write(args: argparse.Namespace) -> int:
    value = " ".join(args.value)
    with _client(args) as c:
        warning = c.write(args.path, value)
    if warning:
        print(f"tracetui write: warning: {warning}", file=sys.stderr)
    _out(args, {"ok": True, "path": args.path, "value": value}, None)
    return EXIT_OK


def cmd_daemon(args: argparse.Namespace) -> int:
    from tracetui.core.client import rendezvous, spawn

    directory = rendezvous.runtime_dir(args.runtime_dir)
    if not args.detach:
        from tracetui.core.daemon.server import main as daemon_main

        return daemon_main(directory)
    from tracetui.core.client import Client
    from tracetui.core.errors import TraceError

    try:
        with Client(str(directory), timeout=0.5) as c:
            doc = {"pid": c.daemon_pid, "runtime_dir": str(directory), "started": False}
            _out(
                args, doc, f"a tracetui daemon (pid {c.daemon_pid}) already answers in {directory}"
            )
            return EXIT_OK
    except TraceError:
        pass  # nobody answers: start one below
    proc = spawn.spawn_daemon(directory, detach=True)
    doc = {"pid": proc.pid, "runtime_dir": str(directory), "started": True}
    _out(args, doc, f"tracetui daemon started (pid {proc.pid}) in {directory}")
    return EXIT_OK


def cmd_console(args: argparse.Namespace) -> int:
    try:
        from tracetui import app
    except ImportError as e:
        print(
            f"tracetui: the console is not available in this installation ({e}); "
            "the verbs work: see `tracetui --help`",
            file=sys.stderr,
        )
        return EXIT_USAGE
    # The console parses its own options: hand it the console options given here, as argv.
    argv: list[str] = []
    if args.runtime_dir:
        argv += ["--runtime-dir", args.runtime_dir]
    if args.layout:
        argv += ["--layout", args.layout]
    if args.history is not None:
        argv += ["--history", str(args.history)]
    for url in args.relay or ():
        argv += ["--relay", url]
    argv += [
        flag for flag, on in (("--demo", args.demo), ("--keep-daemon", args.keep_daemon)) if on
    ]
    return int(app.main(argv) or 0)


# ------------------------------------------------------------------------------ the table


def _args_ls(p: argparse.ArgumentParser) -> None:
    p.add_argument("-R", "--recursive", action="store_true", help="list subdirectories too")
    p.add_argument("path", nargs="?", default="", metavar="PATH")


def _args_paths(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH")


def _args_path(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH")


def _args_write(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH")
    p.add_argument("value", nargs="+", metavar="VALUE", help="several words are joined by spaces")


def _args_daemon(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--detach", action="store_true", help="run in the background and return once it answers"
    )


VERBS: tuple[Verb, ...] = (
    Verb("ls", "list a directory of the namespace (the top by default)", cmd_ls, _args_ls),
    Verb("mkdir", "create a trace (TRACE) or a channel (TRACE/CHANNEL)", cmd_mkdir, _args_paths),
    Verb("rmdir", "remove a stopped trace or one of its channels", cmd_rmdir, _args_paths),
    Verb("read", "print the value of a file, e.g. mytrace/main/stats", cmd_read, _args_path),
    Verb("write", "write a value to a file, e.g. mytrace/start 1", cmd_write, _args_write),
    Verb("daemon", "run the daemon (in the foreground unless --detach)", cmd_daemon, _args_daemon),
    Verb("dump", module="tracetui.cli.dump"),
    Verb("watch", module="tracetui.cli.watch"),
    Verb("run", module="tracetui.run"),
    Verb("export", module="tracetui.cli.export"),
    Verb("config", module="tracetui.cli.config"),
    Verb("open", module="tracetui.cli.open"),
)


# ------------------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = getattr(args, "func", cmd_console)
    if args.runtime_dir:
        # Verbs of other modules and anything they spawn find the instance through the env.
        os.environ["TRACETUI_RUNTIME_DIR"] = args.runtime_dir
    from tracetui.core.errors import DaemonNotRunning, DaemonUnreachable, TraceError

    try:
        return func(args)
    except DaemonNotRunning as e:
        return _error(args, e, EXIT_NO_DAEMON)
    except DaemonUnreachable as e:
        return _error(args, e, EXIT_COMM)
    except TraceError as e:
        return _error(args, e, EXIT_REFUSED)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `tracetui read ... | head`: the reader left; that is not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def _error(args: argparse.Namespace, e: Any, code: int) -> int:
    print(f"tracetui: {e}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"error": {"errno": e.errno, "code": e.code, "message": e.message}}))
    return code


if __name__ == "__main__":
    sys.exit(main())
