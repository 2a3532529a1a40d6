"""``omicsfs stats MOUNTPOINT``: the daemon's ``.omicsfs/stats.json``, pretty-printed or live.

Reading the file through the mount (rather than a socket) needs no extra port or permission: who
can see the mount can see its counters. ``--watch`` redraws every ``--interval`` seconds with a
progress bar per upload in flight.
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
    read_ahead = stats.get("read_ahead", {})
    if read_ahead:
        lines.append(
            f"read-ahead: {_mib(read_ahead.get('reserved_bytes', 0))} of "
            f"{_mib(read_ahead.get('budget_bytes', 0))} reserved, {read_ahead.get('streams', 0)} streams, "
            f"{read_ahead.get('prefetched_parts', 0)} parts prefetched"
        )
    lines.append(
        f"throttled {stats.get('throttled', 0)}, retries "
        + (", ".join(f"{k} {v}" for k, v in sorted(stats.get("retries", {}).items())) or "0")
        + "; errors by errno "
        + (", ".join(f"{k} {v}" for k, v in sorted(stats.get("errors_by_errno", {}).items())) or "none")
    )
    uploads = stats.get("uploads", {})
    lines.append(f"uploads: {uploads.get('completed', 0)} completed, {uploads.get('aborted', 0)} aborted")
    for name, progress in sorted(uploads.get("in_flight", {}).items()):
        if not isinstance(progress, dict):
            progress = {"written_bytes": progress, "uploaded_bytes": 0}
        written, uploaded = progress.get("written_bytes", 0), progress.get("uploaded_bytes", 0)
        filled = BAR if written == 0 else min(BAR, BAR * uploaded // max(written, 1))
        lines.append(
            f"  {name} [{'#' * filled}{'.' * (BAR - filled)}] {_mib(uploaded)} of {_mib(written)} written"
        )
    return "\n".join(lines) + "\n"


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
