"""``tracetui export``: a recorded trace as a Perfetto trace or Chrome Trace Event JSON.

The output is written to a temporary file next to FILE and renamed over it only when the
export succeeded, so a failed export leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
import tempfile
import time
from typing import Any

from tracetui.core.trace.export import ExportError, export_chrome_json, export_perfetto
from tracetui.core.trace.metadata import TraceFormatError
from tracetui.core.trace.traces import open_trace

FORMATS = ("perfetto", "chrome-json")
SUFFIXES = {".pftrace": "perfetto", ".perfetto-trace": "perfetto", ".json": "chrome-json"}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``export`` on the CLI's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "export",
        help="convert a trace directory for Perfetto or chrome://tracing",
        description=(
            "Write a recorded trace as a Perfetto protobuf trace (open it in ui.perfetto.dev) "
            "or as Chrome Trace Event Format JSON: events as instants on CPU and thread tracks, "
            "function calls as slices, losses as 'lost N events' instants, and the numeric "
            "fields named by --counter as counter tracks."
        ),
        epilog="Exit status: 0 on success, 1 on any error (nothing is left at FILE then).",
    )
    p.add_argument("dir", metavar="DIR", help="trace directory (holds 'metadata')")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="output file")
    p.add_argument(
        "--format",
        metavar="FORMAT",
        help="perfetto or chrome-json (default: from FILE's suffix: .pftrace, "
        ".perfetto-trace -> perfetto; .json -> chrome-json)",
    )
    p.add_argument(
        "--counter",
        metavar="FIELD",
        action="append",
        default=[],
        help="a numeric field to show as a counter track: EVENT.FIELD or FIELD (repeatable)",
    )
    p.set_defaults(func=run)
    return p


class _Bar:
    """A plain one-line progress bar on stderr (\\r, no Textual), at most 10 redraws/s."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.1:
            return
        self.last = now
        frac = min(1.0, done / total) if total > 0 else 1.0
        width = 40
        fill = int(frac * width)
        sys.stderr.write(f"\rexporting [{'#' * fill}{'.' * (width - fill)}] {frac * 100:3.0f}%")
        sys.stderr.flush()

    def end(self) -> None:
        if self.last:
            sys.stderr.write("\r" + " " * 60 + "\r")
            sys.stderr.flush()


def _fail(msg: str) -> int:
    print(f"tracetui export: {msg}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    fmt = args.format
    if fmt is None:
        suffix = next((s for s in SUFFIXES if args.output.endswith(s)), None)
        if suffix is None:
            return _fail(
                f"cannot tell the format from {args.output!r}: give --format perfetto or "
                "--format chrome-json"
            )
        fmt = SUFFIXES[suffix]
    if fmt not in FORMATS:
        return _fail(f"unknown format {fmt!r} (perfetto or chrome-json)")
    try:
        trace = open_trace(args.dir)
    except TraceFormatError as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"cannot read {args.dir}: {e.strerror or e}")
    out_dir = os.path.dirname(os.path.abspath(args.output))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tracetui-export-", dir=out_dir)
    except OSError as e:
        return _fail(f"cannot write {args.output}: {e.strerror or e}")
    bar = _Bar() if sys.stderr.isatty() else None
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of short-lived tuples, no cycles
    ok = False
    try:
        if fmt == "perfetto":
            with os.fdopen(fd, "wb") as f:
                n = export_perfetto(trace, f, counters=args.counter, progress=bar)
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                n = export_chrome_json(trace, f, counters=args.counter, progress=bar)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, args.output)
        ok = True
    except (ExportError, TraceFormatError) as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"cannot write {args.output}: {e.strerror or e}")
    finally:
        if gc_was_enabled:
            gc.enable()
        if bar is not None:
            bar.end()
        if not ok:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    print(f"{n} events written to {args.output} ({fmt})", file=sys.stderr)
    return 0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
