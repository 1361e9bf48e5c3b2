"""``tracetui watch TRACE/CHANNEL``: print a channel's events as they are recorded.

One line per event, as ``tracetui dump`` prints them (cli/render.py); ``--json`` prints one
object per event ({ts_ns, cpu, channel, name, fields}).  When batches were lost because this
terminal read too slowly, a line says how many (``LOST n batches``) — never silently.  Ends
on Ctrl-C, after ``--count`` events or ``--duration`` seconds.

Exit status: 0; 1 when the daemon refuses (no such channel); 3 when no daemon answers.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import time
from typing import Any

from tracetui.cli.render import event_json, item_line
from tracetui.core.client.live import LiveBatch, LiveWatch
from tracetui.core.errors import DaemonNotRunning, TraceError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "watch",
        help="print the events of a channel as they are recorded",
        description="Subscribe to TRACE/CHANNEL and print its events live, one line each.",
        epilog="Exit status: 0 on success, 1 if refused, 3 if no daemon answers.",
    )
    p.add_argument("path", metavar="TRACE/CHANNEL")
    p.add_argument("--json", action="store_true", help="one JSON object per event")
    p.add_argument("--count", type=int, default=0, help="stop after N events")
    p.add_argument("--duration", type=float, default=0.0, help="stop after S seconds")
    p.set_defaults(func=run)
    return p


def format_batch(batch: LiveBatch, as_json: bool) -> list[str]:
    if as_json:
        return [json.dumps(event_json(e)) for e in batch.items]
    return [item_line(e) for e in batch.items]


def run(args: argparse.Namespace) -> int:
    q: queue.Queue[LiveBatch] = queue.Queue()
    try:
        lw = LiveWatch(args.path, q.put, getattr(args, "runtime_dir", None)).start()
    except DaemonNotRunning as e:
        print(f"tracetui watch: {e}", file=sys.stderr)
        return 3
    except TraceError as e:
        print(f"tracetui watch: {e}", file=sys.stderr)
        return 1
    shown = 0
    reported_lost = 0
    end = time.monotonic() + args.duration if args.duration > 0 else None
    out = sys.stdout
    try:
        while end is None or time.monotonic() < end:
            try:
                batch = q.get(timeout=0.1)
            except queue.Empty:
                continue
            if batch.dropped_batches > reported_lost:
                lost = batch.dropped_batches - reported_lost
                reported_lost = batch.dropped_batches
                if args.json:
                    out.write(json.dumps({"lost_batches": lost, "channel": args.path}) + "\n")
                else:
                    out.write(f"LOST {lost} batches of {args.path}\n")
            for msg in batch.errors:
                print(f"tracetui watch: {msg}", file=sys.stderr)
            lines = format_batch(batch, args.json)
            if args.count:
                lines = lines[: args.count - shown]
            if lines:
                out.write("\n".join(lines) + "\n")
                out.flush()
            shown += len(lines)
            if args.count and shown >= args.count:
                break
    except KeyboardInterrupt:
        return 0  # Ctrl-C is how a watch normally ends
    except BrokenPipeError:
        return 0
    finally:
        lw.close()
    return 0
