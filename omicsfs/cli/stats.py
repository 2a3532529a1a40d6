"""``omicsfs stats MOUNTPOINT``: the daemon's ``.omicsfs/stats.json``, pretty-printed or live.

Reading the file through the mount (rather than a socket) needs no extra port or permission: who
can see the mount can see its counters. ``--watch`` redraws every ``--interval`` seconds with a
progress bar per upload in flight (bytes as they leave, rate, time left, parts), a total across
uploads, and the uploads that ended in the last minutes with their read set or error, the way
``rclone copy -P`` shows a transfer (fs/write/progress.py makes that part of the document).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

BAR = 30


def read_stats(mountpoint: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((mountpoint / ".omicsfs" / "stats.json").read_text())
    return document


def _mib(value: int) -> str:
    return f"{value / (1 << 20):,.1f} MiB"


def render(stats: dict[str, Any]) -> str:
    cache = stats.get("cache", {})
    hits = cache.get("hits", {})
    lines = [
        "API calls: "
        + (", ".join(f"{k} {v}" for k, v in sorted(stats.get("api_calls", {}).items())) or "none"),
        f"fetched {_mib(stats.get('bytes_fetched', 0))}, "
        f"uploaded {_mib(stats.get('uploads', {}).get('bytes_uploaded', 0))}",
        "cache: hits "
        + (", ".join(f"{k} {v}" for k, v in sorted(hits.items())) or "none")
        + f"; misses {cache.get('misses', 0)}; memory {_mib(cache.get('memory_bytes', 0))}"
        f" + hot {_mib(cache.get('hot_bytes', 0))} of {_mib(cache.get('memory_limit_bytes', 0))}",
    ]
    lines += render_planes(stats.get("planes", {}))
    lines += render_read_ahead(stats.get("read_ahead", {}))
    lines.append(
        f"throttled {stats.get('throttled', 0)}, retries "
        + (", ".join(f"{k} {v}" for k, v in sorted(stats.get("retries", {}).items())) or "0")
        + "; errors by errno "
        + (", ".join(f"{k} {v}" for k, v in sorted(stats.get("errors_by_errno", {}).items())) or "none")
    )
    lines += render_uploads(stats.get("uploads", {}))
    return "\n".join(lines) + "\n"


def render_planes(planes: dict[str, Any]) -> list[str]:
    """Bytes and data calls per plane, and how often S3 gave way to parts or saved a metadata call."""
    if not planes:
        return []
    received, calls = planes.get("bytes", {}), planes.get("calls", {})
    each = ", ".join(
        f"{plane} {_mib(received.get(plane, 0))} in {calls.get(plane, 0)} calls"
        for plane in sorted(set(received) | set(calls))
        if received.get(plane) or calls.get(plane)
    )
    return [
        f"planes: {each or 'nothing fetched'}; fallbacks to parts {planes.get('s3_fallbacks', 0)}; "
        f"sizes from S3 listings {planes.get('s3_listed_sizes', 0)}"
    ]


def render_read_ahead(read_ahead: dict[str, Any]) -> list[str]:
    """The budget, then each open file's window (widest first)."""
    if not read_ahead:
        return []
    lines = [
        f"read-ahead: {_mib(read_ahead.get('reserved_bytes', 0))} of "
        f"{_mib(read_ahead.get('budget_bytes', 0))} reserved, {read_ahead.get('streams', 0)} streams, "
        f"{read_ahead.get('prefetched_parts', 0)} parts and {read_ahead.get('prefetched_blocks', 0)} "
        "blocks prefetched"
    ]
    for window in read_ahead.get("windows", []):
        if window.get("sequential"):
            state = f"sequential, window {_mib(window.get('window_bytes', 0))}"
        else:
            state = "random, no read-ahead"
        lines.append(
            f"  {window.get('file', '?')} ({window.get('plane', '?')}): {state}, "
            f"at {_mib(window.get('next_offset', 0))}, {_mib(window.get('reserved_bytes', 0))} reserved"
        )
    return lines


def _rate(value: Any) -> str:
    return f"{_mib(int(value))}/s" if isinstance(value, int | float) and value > 0 else "-/s"


def _eta(value: Any) -> str:
    if not isinstance(value, int | float):
        return "ETA -"
    seconds = round(value)
    if seconds >= 3600:
        return f"ETA {seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"ETA {seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"ETA {seconds}s"


def _parts(count: Any) -> str:
    return f"{count} part{'' if count == 1 else 's'}"


def render_uploads(uploads: dict[str, Any]) -> list[str]:
    """The uploads section: totals, a bar per file in flight, then the ones that ended lately."""
    in_flight = uploads.get("in_flight", {})
    total = uploads.get("total", {})
    head = f"uploads: {uploads.get('completed', 0)} completed, {uploads.get('aborted', 0)} aborted"
    if in_flight:
        head += (
            f"; {len(in_flight)} in flight: {_mib(total.get('uploaded_bytes', 0))} of "
            f"{_mib(total.get('stored_bytes', 0))} uploaded, {_rate(total.get('rate_bytes_per_second'))}, "
            f"{_eta(total.get('eta_seconds'))}, {_parts(total.get('parts_done', 0))}"
        )
    lines = [head]
    for name, progress in sorted(in_flight.items()):
        if not isinstance(progress, dict):
            progress = {"written_bytes": progress}
        written = progress.get("written_bytes", 0)
        stored = progress.get("stored_bytes", written)
        uploaded = progress.get("uploaded_bytes", 0)
        filled = BAR if stored == 0 else min(BAR, BAR * uploaded // max(stored, 1))
        lines.append(
            f"  {name} [{'#' * filled}{'.' * (BAR - filled)}] {_mib(uploaded)} of {_mib(stored)} uploaded, "
            f"{_mib(written)} written, {_rate(progress.get('rate_bytes_per_second'))}, "
            f"{_eta(progress.get('eta_seconds'))}, {_parts(progress.get('parts_done', 0))}"
            f" ({progress.get('state', 'writing')})"
        )
    recent = uploads.get("recent", [])
    if recent:
        lines.append("ended lately:")
    for item in recent:
        files = ", ".join(item.get("files", []))
        when = item.get("ended", "")
        if item.get("read_set_id"):
            outcome = f"read set {item['read_set_id']} {item.get('status', '')}"
        else:
            outcome = f"FAILED, nothing kept: {item.get('error') or 'unknown error'}"
        lines.append(
            f"  {when} {files} -> {outcome} ({_mib(item.get('uploaded_bytes', 0))} in "
            f"{item.get('seconds', 0)}s)"
        )
    return lines


def run_stats(args: argparse.Namespace) -> int:
    try:
        if args.json:
            print(json.dumps(read_stats(args.mountpoint), indent=2))
            return 0
        if not args.watch:
            sys.stdout.write(render(read_stats(args.mountpoint)))
            return 0
        shown = 0
        while args.count is None or shown < args.count:
            text = render(read_stats(args.mountpoint))
            sys.stdout.write(("\x1b[2J\x1b[H" if sys.stdout.isatty() else "") + text)
            sys.stdout.flush()
            shown += 1
            if args.count is None or shown < args.count:
                time.sleep(args.interval)
        return 0
    except KeyboardInterrupt:
        return 0
    except (OSError, ValueError) as exc:
        print(f"omicsfs stats: cannot read {args.mountpoint}/.omicsfs/stats.json: {exc}", file=sys.stderr)
        return 1


def add_parser(commands: Any) -> None:
    stats = commands.add_parser("stats", help="show a mount's counters (live with --watch)")
    stats.add_argument("mountpoint", type=Path)
    stats.add_argument("--watch", action="store_true", help="redraw until Ctrl-C")
    stats.add_argument("--interval", type=float, default=1.0, help="seconds between redraws (default 1)")
    stats.add_argument("--count", type=int, help=argparse.SUPPRESS)
    stats.add_argument("--json", action="store_true", help="print the raw JSON")
