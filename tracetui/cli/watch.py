"""``tracetui watch TRACE/CHANNEL``: print a channel's events as they are recorded.

One line per event, as ``tracetui dump`` prints them (cli/render.py); ``--json`` prints one
object per event ({ts_ns, cpu, channel, name, fields}).  When batches were lost because this
terminal read too slowly, a line says how many (``LOST n batches``) — never silently.  Ends
on Ctrl-C, after ``--count`` events or ``--duration`` seconds.

``tracetui watch net://HOST[:PORT]`` lists the sessions an lttng-relayd serves live (its live
port, 5344 by default), one line each: host, session, streams, viewers attached, live timer;
``tracetui watch net://HOST[:PORT]/host/HOSTNAME/SESSION`` prints that session's events as they
reach the relayd (from the beginning of what it holds), in the same lines and JSON, whoever
wrote them (tracetui daemons through their ``relay`` file, LTTng), and ends when the session
does (core/client/remote.py).

Exit status: 0; 1 when the daemon refuses (no such channel), or for a bad live URL, an unknown
remote session or a relayd that answers what cannot be read; 3 when no daemon answers, or no
relayd answers at the live URL (or it goes away during the watch).
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import time
from collections.abc import Callable
from typing import Any

from tracetui.cli.render import event_json, item_line
from tracetui.core.client.live import LiveBatch, LiveWatch
from tracetui.core.errors import DaemonNotRunning, TraceError

REMOTE_SCHEMES = ("net://", "net4://", "net6://", "tcp://")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "watch",
        help="print the events of a channel as they are recorded",
        description="Subscribe to TRACE/CHANNEL and print its events live, one line each; "
        "or, given net://HOST[:PORT]/host/HOSTNAME/SESSION, read a session live from an "
        "lttng-relayd (net://HOST[:PORT] alone lists its sessions).",
        epilog="Exit status: 0 on success, 1 if refused (no such channel, a bad live URL, no such "
        "remote session), 3 if no daemon answers or no relayd answers at the live URL (or it goes "
        "away).",
    )
    p.add_argument("path", metavar="TRACE/CHANNEL | net://HOST[:PORT][/host/HOSTNAME/SESSION]")
    p.add_argument("--json", action="store_true", help="one JSON object per event")
    p.add_argument("--count", type=int, default=0, help="stop after N events")
    p.add_argument("--duration", type=float, default=0.0, help="stop after S seconds")
    p.set_defaults(func=run)
    return p


def format_batch(batch: LiveBatch, as_json: bool) -> list[str]:
    if as_json:
        return [json.dumps(event_json(e)) for e in batch.items]
    return [item_line(e) for e in batch.items]


def print_batches(
    args: argparse.Namespace,
    q: queue.Queue[Any],
    fmt: Callable[[LiveBatch, bool], list[str]],
    ended: Callable[[], int],
) -> int:
    """Print batches from Q (local or remote) until --count, --duration, Ctrl-C or None (the
    source ended: ENDED gives the status); losses of batches are said, never skipped."""
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
            if batch is None:
                return ended()
            if batch.dropped_batches > reported_lost:
                lost = batch.dropped_batches - reported_lost
                reported_lost = batch.dropped_batches
                if args.json:
                    out.write(json.dumps({"lost_batches": lost, "channel": batch.path}) + "\n")
                else:
                    out.write(f"LOST {lost} batches of {batch.path}\n")
            for msg in batch.errors:
                print(f"tracetui watch: {msg}", file=sys.stderr)
            lines = fmt(batch, args.json)
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
    return 0


def run(args: argparse.Namespace) -> int:
    if args.path.startswith(REMOTE_SCHEMES) or "://" in args.path:
        return _run_remote(args)
    q: queue.Queue[LiveBatch] = queue.Queue()
    try:
        lw = LiveWatch(args.path, q.put, getattr(args, "runtime_dir", None)).start()
    except DaemonNotRunning as e:
        print(f"tracetui watch: {e}", file=sys.stderr)
        return 3
    except TraceError as e:
        print(f"tracetui watch: {e}", file=sys.stderr)
        return 1
    try:
        return print_batches(args, q, format_batch, lambda: 0)
    finally:
        lw.close()


# -- remote sessions (an lttng-relayd's live port) -------------------------------------------


class _Items:
    """One batch's items as a TraceSource's batches (dump's rendering of any CTF event)."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def batches(self) -> Any:
        yield self.items


def format_remote_batch(batch: LiveBatch, as_json: bool) -> list[str]:
    """tracetui's events as local watch prints them; other producers' as dump prints them."""
    from tracetui.cli.dump import generic_lines
    from tracetui.core.trace.packets import Event, Loss

    out: list[str] = []
    other: list[Any] = []

    def flush() -> None:
        if other:
            text = b"".join(generic_lines(_Items(other), as_json)).decode()  # type: ignore[arg-type]
            out.extend(text.splitlines())
            other.clear()

    for it in batch.items:
        if isinstance(it, Event | Loss):
            flush()
            out.append(json.dumps(event_json(it)) if as_json else item_line(it))
        else:
            other.append(it)
    flush()
    return out


def _run_remote(args: argparse.Namespace) -> int:
    from tracetui.core.client.remote import RemoteWatch, list_sessions
    from tracetui.core.wire.lttng_live import LiveError, LiveUnreachable, parse_live_url

    def fail(e: TraceError) -> int:
        print(f"tracetui watch: {e}", file=sys.stderr)
        return 3 if isinstance(e, LiveUnreachable) else 1

    try:
        url = parse_live_url(args.path)
        if url.session is None:
            sessions = list_sessions(url)
            for s in sorted(sessions, key=lambda s: (s.hostname, s.name, s.id)):
                if args.json:
                    print(
                        json.dumps(
                            {
                                "host": s.hostname,
                                "session": s.name,
                                "id": s.id,
                                "streams": s.streams,
                                "clients": s.clients,
                                "live_timer_us": s.live_timer_us,
                            }
                        )
                    )
                else:
                    print(
                        f"{s.hostname} {s.name} streams={s.streams} clients={s.clients} "
                        f"live_timer={s.live_timer_us // 1000}ms"
                    )
            if not sessions and not args.json:
                print(
                    f"tracetui watch: relayd at {url.address} serves no live session",
                    file=sys.stderr,
                )
            return 0
        q: queue.Queue[LiveBatch | None] = queue.Queue()
        rw = RemoteWatch(url, q.put, on_end=lambda _w: q.put(None)).start()
    except LiveError as e:
        return fail(e)

    def ended() -> int:
        return 0 if rw.failure is None else fail(rw.failure)  # the session ended

    try:
        return print_batches(args, q, format_remote_batch, ended)
    finally:
        rw.close()
