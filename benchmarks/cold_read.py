"""Cold reads at wire speed: the mount against downloading, and the daemon's CPU per byte.

Run from the repository root, as root (FUSE, /proc of the daemon)::

    .venv/bin/python benchmarks/cold_read.py [--size-mib 632] [--rounds 3] [--bandwidth 100MiB]
        [--before PATH] [--label NAME]

One ``omicsfs serve`` with the real part size (100 MiB) holds one FASTQ.gz read set of
``--size-mib`` MiB (seeded random 150 bp records). Each round measures, in this order:

``tm``      the HealthOmics Transfer Manager (PyPI aws-healthomics-tools) downloading the read set
            into a file on this disk (its defaults: 10 requests in flight, 256 KiB io chunks);
``cp``      ``cp`` of the same file out of a fresh mount into a file on the same disk;
``raw``     boto3 GetReadSet of every part, 4 parts in flight, bodies read in 1 MiB chunks and
            dropped (what the service can send; the ceiling for any client);
``dd``      one cold ``dd bs=1M of=/dev/null`` through a fresh mount;
``warm``    ``dd iflag=direct bs=1M`` again on that mount: every byte from the daemon's memory cache.

Each mount is fresh (no ``--cache-dir``, ``--cache-size`` 1.5x the file) and its daemon's CPU
seconds (utime + stime from /proc/PID/stat, delta around the timed step) are reported per GiB;
its VmHWM is the peak RSS. ``--before PATH`` also runs ``cp`` and ``dd`` on mounts of another
checkout of omicsfs (PYTHONPATH=PATH, same interpreter), interleaved, so before and after come
from one run. ``--bandwidth`` paces every GetReadSet body to that rate per connection
(localservice/pacing.py), which is how a real region behaves.

Prints one table per step and the ratios the issue names; writes
``benchmarks/results/cold_read[-LABEL].md`` and ``.json`` (gitignored).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from harness import MIB, Mount, Service, log, write_copies

from omicsfs.sample.data import fastq_gzip_member
from omicsfs.sample.load import upload

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "benchmarks" / "results"
PART = 100 * MIB
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


@dataclass
class Series:
    """One measured step across the rounds."""

    name: str
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # daemon CPU seconds per GiB
    rss_mib: list[float] = field(default_factory=list)

    def mib_s(self, size: int) -> list[float]:
        return [size / MIB / s for s in self.seconds]


class Bench:
    def __init__(self, work: Path, size_mib: int, bandwidth: str | None, before: Path | None) -> None:
        self.work = work
        self.before = before
        faults = f"bandwidth={bandwidth}" if bandwidth else ""
        self.service = Service(work / "service", PART, faults)
        self.omics = self.service.client(pool=20)
        source = work / "reads.fastq.gz"
        member = fastq_gzip_member(8 * MIB, 20240601, 150, batch=1024)
        self.size = write_copies(source, member, -(-size_mib * MIB // len(member)))
        self.store = self.omics.create_sequence_store(name="bench-cold")["id"]
        self.read_set = upload(
            self.omics,
            self.store,
            "FASTQ",
            {"SOURCE1": source},
            PART,
            name="big",
            subjectId="s",
            sampleId="s",
        )
        self.service.drain()
        source.unlink()
        meta = self.omics.get_read_set_metadata(sequenceStoreId=self.store, id=self.read_set)
        self.parts = meta["files"]["source1"]["totalParts"]
        self.out = work / "out"
        self.out.mkdir()

    def mounted(self, pythonpath: Path | None) -> Mount:
        extra = ["--cache-size", f"{self.size * 3 // 2 // MIB + 64}M"]
        return Mount(self.work / "mnt", self.service.url, *extra, pythonpath=pythonpath)

    def file_in(self, mount: Mount) -> Path:
        path = mount.path / "sequence-stores" / "bench-cold" / "big.fastq.gz"
        os.stat(path)  # metadata is not what is measured
        return path

    def timed_on_mount(
        self,
        pythonpath: Path | None,
        step: Callable[[Path], None],
        series: Series,
        warm: Series | None = None,
    ) -> None:
        mount = self.mounted(pythonpath)
        try:
            path = self.file_in(mount)
            before = cpu_seconds(mount.pid)
            start = time.perf_counter()
            step(path)
            series.seconds.append(time.perf_counter() - start)
            series.cpu.append((cpu_seconds(mount.pid) - before) / (self.size / (1 << 30)))
            if warm is not None:
                before = cpu_seconds(mount.pid)
                start = time.perf_counter()
                run(["dd", f"if={path}", "of=/dev/null", "bs=1M", "iflag=direct"])
                warm.seconds.append(time.perf_counter() - start)
                warm.cpu.append((cpu_seconds(mount.pid) - before) / (self.size / (1 << 30)))
            series.rss_mib.append(mount.status_kib("VmHWM") / 1024)
            problems = mount.problems()
            if problems:
                log("    mount log: " + " | ".join(problems[:5]))
        finally:
            mount.stop()

    def cp(self, path: Path) -> None:
        target = self.out / "cp.fastq.gz"
        run(["cp", str(path), str(target)])
        if target.stat().st_size != self.size:
            raise RuntimeError("cp copied the wrong number of bytes")
        target.unlink()

    def dd(self, path: Path) -> None:
        result = run(["dd", f"if={path}", "of=/dev/null", "bs=1M"])
        if f"{self.size} bytes" not in result.stderr:
            raise RuntimeError(f"dd read the wrong number of bytes: {result.stderr}")

    def transfer_manager(self, series: Series) -> None:
        from omics.common.omics_file_types import ReadSetFileName
        from omics.transfer.config import TransferConfig
        from omics.transfer.manager import TransferManager

        target = self.out / "tm.fastq.gz"
        client = self.service.client(pool=20)
        start = time.perf_counter()
        with TransferManager(client, TransferConfig(directory=str(self.out))) as manager:
            manager.download_read_set_file(
                sequence_store_id=self.store,
                read_set_id=self.read_set,
                server_filename=ReadSetFileName.SOURCE1,
                client_fileobj=str(target),
            )
        series.seconds.append(time.perf_counter() - start)
        if target.stat().st_size != self.size:
            raise RuntimeError("the Transfer Manager wrote the wrong number of bytes")
        target.unlink()

    def raw(self, series: Series) -> None:
        def part(number: int) -> int:
            reply = self.omics.get_read_set(
                sequenceStoreId=self.store, id=self.read_set, file="SOURCE1", partNumber=number
            )
            return sum(len(chunk) for chunk in reply["payload"].iter_chunks(MIB))

        start = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            got = sum(pool.map(part, range(1, self.parts + 1)))
        series.seconds.append(time.perf_counter() - start)
        if got != self.size:
            raise RuntimeError("raw GetReadSet returned the wrong number of bytes")


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {result.stderr.strip()[-400:]}")
    return result


def table(size: int, rows: list[Series], reference: Series | None = None) -> str:
    lines = [
        "| step | MB/s, each round | median MB/s | daemon CPU s/GiB (median) | peak RSS MiB |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        rates = [size / 1e6 / s for s in row.seconds]
        cpu = f"{statistics.median(row.cpu):.2f}" if row.cpu else "-"
        rss = f"{max(row.rss_mib):.0f}" if row.rss_mib else "-"
        each = " / ".join(f"{r:.0f}" for r in rates)
        lines.append(f"| {row.name} | {each} | {statistics.median(rates):.0f} | {cpu} | {rss} |")
    return "\n".join(lines)


def ratio(numerator: Series, denominator: Series) -> str:
    """numerator/denominator throughput, per round (same round's runs) and of the medians."""
    per_round = [d / n for n, d in zip(numerator.seconds, denominator.seconds, strict=False)]
    median = statistics.median(denominator.seconds) / statistics.median(numerator.seconds)
    return f"{' / '.join(f'{r:.2f}' for r in per_round)} (medians {median:.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=632)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bandwidth", help="pace each GetReadSet body, e.g. 100MiB")
    parser.add_argument("--before", type=Path, help="another checkout to compare (PYTHONPATH)")
    parser.add_argument("--label", help="suffix of the results files")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="omicsfs-cold-", dir=os.environ.get("BENCH_TMP")))
    try:
        bench = Bench(work, args.size_mib, args.bandwidth, args.before)
        log(f"read set: {bench.size} bytes in {bench.parts} parts; bandwidth {args.bandwidth or 'unpaced'}")
        tm, raw = Series("Transfer Manager download"), Series("raw GetReadSet, 4 in flight")
        cp, dd, warm = Series("cp out of the mount"), Series("cold dd bs=1M"), Series("warm dd iflag=direct")
        old_cp, old_dd = Series("cp, before"), Series("cold dd, before")
        for number in range(1, args.rounds + 1):
            log(f"round {number}")
            bench.transfer_manager(tm)
            if args.before:
                bench.timed_on_mount(args.before, bench.cp, old_cp)
            bench.timed_on_mount(None, bench.cp, cp)
            bench.raw(raw)
            if args.before:
                bench.timed_on_mount(args.before, bench.dd, old_dd)
            bench.timed_on_mount(None, bench.dd, dd, warm)
            for series in (tm, old_cp, cp, raw, old_dd, dd, warm):
                if series.seconds:
                    log(f"  {series.name}: {bench.size / 1e6 / series.seconds[-1]:.0f} MB/s")
        rows = [tm, *([old_cp] if args.before else []), cp, raw, *([old_dd] if args.before else []), dd, warm]
        title = (
            f"# Cold reads ({args.bandwidth or 'unpaced loopback'}; {bench.size / MIB:.0f} MiB, "
            f"{bench.parts} parts of 100 MiB; {os.cpu_count()} CPUs)"
        )
        text = [title, "", table(bench.size, rows), ""]
        text += [f"- cp / Transfer Manager: {ratio(cp, tm)}", f"- cold dd / raw: {ratio(dd, raw)}"]
        if args.before:
            text += [
                f"- cp / Transfer Manager, before: {ratio(old_cp, tm)}",
                f"- cold dd / raw, before: {ratio(old_dd, raw)}",
                f"- daemon CPU per GiB, after / before: "
                f"{statistics.median(dd.cpu) / statistics.median(old_dd.cpu):.2f} (dd), "
                f"{statistics.median(cp.cpu) / statistics.median(old_cp.cpu):.2f} (cp)",
            ]
        report = "\n".join(text) + "\n"
        print("\n" + report)
        RESULTS.mkdir(parents=True, exist_ok=True)
        name = "cold_read" + (f"-{args.label}" if args.label else "")
        (RESULTS / f"{name}.md").write_text(report)
        data = {s.name: {"seconds": s.seconds, "cpu_s_per_gib": s.cpu, "rss_mib": s.rss_mib} for s in rows}
        (RESULTS / f"{name}.json").write_text(json.dumps({"size": bench.size, "series": data}, indent=2))
        bench.service.stop()
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
