"""``tracetui open DIR [DIR...]``: explore recorded traces in the console (no daemon needed).

Each directory opens in a tab of the explorer (tracetui/screens/explorer.py).  Opening reads
packet headers only (core/trace/index.py), so it costs the trace's packet count.  Exit status:
0; 1 when a directory is not a readable trace (one sentence on stderr, nothing opened).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "open",
        help="explore recorded traces (event list, filters, statistics, losses)",
        description="Open one or more recorded CTF trace directories in the explorer: "
        "/ filters (NAMES, where PREDICATE, or both), s statistics, l/L losses, g time, q quits.",
    )
    p.add_argument("dirs", metavar="DIR", nargs="+", help="trace directory (holds 'metadata')")
    return p


def run(args: argparse.Namespace) -> int:
    from tracetui.core.trace.index import TraceIndex
    from tracetui.core.trace.metadata import TraceFormatError
    from tracetui.core.trace.traces import open_trace

    traces = []
    for d in args.dirs:
        try:
            traces.append((d, TraceIndex(open_trace(d))))
        except (TraceFormatError, OSError) as e:
            print(f"tracetui open: {d}: {e}", file=sys.stderr)
            return 1
    from tracetui.screens.explorer import ExplorerApp

    ExplorerApp(traces).run()
    return 0
