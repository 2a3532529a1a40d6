"""``.omicsfs/stats.json``, ``omicsfs stats`` and the SIGUSR2 debug toggle on a live mount."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.mounting import Mounted, omicsfs


def stats(mnt: Mounted) -> dict:
    return json.loads((mnt.path / ".omicsfs" / "stats.json").read_text())


def test_stats_json_shows_that_a_second_read_is_served_from_the_cache(mnt: Mounted, store_dir: Path) -> None:
    target = store_dir / "NA12878-reads_1.fastq.gz"
    first = target.read_bytes()
    before = stats(mnt)
    assert target.read_bytes() == first
    after = stats(mnt)
    assert after["api_calls"].get("GetReadSet", 0) == before["api_calls"].get("GetReadSet", 0)
    assert after["bytes_fetched"] == before["bytes_fetched"]
    assert after["cache"]["memory_bytes"] + after["cache"]["hot_bytes"] >= len(first)
    assert set(after) >= {
        "api_calls",
        "retries",
        "throttled",
        "cache",
        "read_ahead",
        "errors_by_errno",
        "uploads",
    }


def test_a_failed_request_is_counted_by_errno(mnt: Mounted) -> None:
    before = stats(mnt)["errors_by_errno"].get("ENOENT", 0)
    assert not (mnt.path / "sequence-stores" / "no-such-store").exists()
    assert stats(mnt)["errors_by_errno"].get("ENOENT", 0) == before + 1


def test_stats_command_prints_and_watches(mnt: Mounted) -> None:
    printed = omicsfs("stats", str(mnt.path))
    assert printed.returncode == 0, printed.stderr
    assert "API calls:" in printed.stdout
    assert "cache: hits" in printed.stdout
    watched = omicsfs("stats", str(mnt.path), "--watch", "--count", "2", "--interval", "0")
    assert watched.stdout.count("API calls:") == 2
    raw = omicsfs("stats", str(mnt.path), "--json")
    assert "api_calls" in json.loads(raw.stdout)
    missing = omicsfs("stats", "/nonexistent")
    assert missing.returncode == 1
    assert "cannot read" in missing.stderr


def test_sigusr2_toggles_debug_logging(mnt: Mounted) -> None:
    mnt.process.send_signal(signal.SIGUSR2)
    mnt.wait_for_log("SIGUSR2: log level is now DEBUG")
    mnt.process.send_signal(signal.SIGUSR2)
    mnt.wait_for_log("SIGUSR2: log level is now INFO")
