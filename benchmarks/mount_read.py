"""Reading through an omicsfs mount against the local HealthOmics service: four measurements.

Run from the repository root, as root or a user who may mount FUSE (nothing else needs to run)::

    .venv/bin/python benchmarks/mount_read.py [--quick] [--only SECTION ...] [--repeats R]
        [--bandwidth 100MiB] [--seq-mib 1024] [--label NAME]

Every section starts its own ``omicsfs serve`` (``--processing-delay 0``, ``--log-level WARNING``,
its own data dir and part size) and runs ``omicsfs mount MNT --endpoint-url URL --foreground`` as a
child process, waiting for its "omicsfs is mounted at" log line and stopping it with SIGTERM (both
from harness.py, shared with the other benchmarks).
Each "cold" run is a fresh mount without ``--cache-dir``: unmounting drops the kernel's page cache
of the mount's files and the daemon's memory cache. Request counts are the service's own
(``GET /_omicsfs/stats``, reset before each measured step). MiB = 2**20 bytes.

Sections (``--only`` picks some; default all):

``sequential``
    A >= 512 MiB FASTQ.gz read set (one ~8 MiB gzip member of seeded random 150 bp records,
    repeated), uploaded with the multipart API in 100 MiB parts into a service with the real part
    size of 100 MiB, then processed (drain). (a) raw API: boto3 GetReadSet of every part, 4 in
    flight, bodies read in 1 MiB chunks; timed from the first request to the last byte. (b) through
    a fresh mount (``--metadata-tps 1000``): the file is ``stat``-ed first (metadata is not what is
    measured), then ``dd if=FILE of=/dev/null bs=1M`` is timed (wall clock around dd). Both
    ``--repeats`` times; reported best and median, and mount/raw (target >= 0.9).

``regions``
    ``omicsfs.sample.data.make_sample`` (two contigs, chr1 50 kb and chr2 30 kb: fixed there) with
    enough read pairs for a 20-50 MiB BAM, loaded with ``omicsfs.sample.load.load_sample`` into a
    service with 4 MiB parts, so the BAM spans many parts. 100 random 10 kb regions (seeded; a
    random contig, a random start inside it) are each counted with ``samtools view -c BAM REGION``
    (one samtools process per query, so a pass includes 100 process starts and 100 index loads).
    Passes: on the local file; through a fresh mount (cold) and again on the same mount (warm);
    through a mount with ``--cache-dir`` (the cold pass that fills it), then, after a remount with
    the same ``--cache-dir``, warm from the disk tier. Every pass's counts must equal the local
    ones. Reported: seconds per pass, warm/local (target within 1.5x), requests per pass.

``listing``
    A store of 1,000 tiny single-end FASTQ read sets (3 records each, multipart uploads on 8
    threads). On a fresh mount with the default ``--metadata-tps 5`` (the AWS quota), then on one
    with ``--metadata-tps 50`` and a fresh ``--cache-dir``: ``ls STORE | wc -l`` then
    ``ls -l STORE``; then a remount with that (now warm) ``--cache-dir`` and the default 5 TPS and
    ``ls -l STORE`` again (expected: no GetReadSetMetadata). Each run once (the 5 TPS ``ls -l``
    alone takes about count/5 seconds). ``ls -l`` lines showing size 0 are counted: there must be
    none.

``rss``
    32 FASTQ.gz read sets of 4 to 32 MiB (a 4 MiB member repeated 1-8 times) in a service with
    8 MiB parts; a mount with ``--cache-size 256M``; after an ``ls -l`` of the store, all 32 are
    read at once with ``dd bs=1M`` (32 processes). The daemon's VmHWM (peak RSS) from
    /proc/PID/status is reported against cache size + 150 MiB.

``--quick`` shrinks every section (64 MiB and 16 MiB parts; 20,000 pairs, 512 KiB parts and 30
queries; 150 read sets; 32 files of about 0.3-3 MiB with 512 KiB parts) and sets ``--repeats`` to 2,
for a smoke run of under two minutes.

``--bandwidth 100MiB`` starts every service with ``--faults bandwidth=100MiB``: each GetReadSet
and GetReference body is paced to that rate on its own connection, as the real service's parts
are (localservice/pacing.py). On unpaced loopback the raw API moves about 3 GB/s on two CPUs and
the comparison measures CPU per byte; paced, it measures how many parts each side keeps in
flight. ``--seq-mib`` sets the sequential read set's size and ``--label`` names the results files.

Results: a markdown table per section on stdout, and ``benchmarks/results/mount_read.md`` plus
``mount_read.json`` (``mount_read-quick.*`` with ``--quick``; a run with ``--only`` adds the
section names, e.g. ``mount_read-rss.md``; all gitignored). Mounts are always
unmounted (SIGTERM, then ``fusermount3 -u -z`` if needed), services stopped and the temporary
folder removed, also on failure or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore
from harness import MIB, Mount, Service, log, write_copies

from omicsfs.config import ReadAheadConfig
from omicsfs.sample.data import fastq_gzip_member, make_sample
from omicsfs.sample.load import load_sample, upload

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
KIB = 1 << 10
SEED = 20240601
READ_LENGTH = 150
SECTIONS = ("sequential", "regions", "listing", "rss")


@dataclass(frozen=True)
class Sizes:
    """Everything --quick changes."""

    seq_bytes: int = 512 * MIB
    seq_part: int = 100 * MIB
    seq_member: int = 8 * MIB
    region_pairs: int = 200_000
    region_part: int = 4 * MIB
    region_queries: int = 100
    region_length: int = 10_000
    listing_count: int = 1000
    rss_files: int = 32
    rss_member: int = 4 * MIB
    rss_part: int = 8 * MIB
    rss_cache: int = 256 * MIB
    repeats: int = 3


QUICK = Sizes(
    seq_bytes=64 * MIB, seq_part=16 * MIB, seq_member=4 * MIB,
    region_pairs=20_000, region_part=512 * KIB, region_queries=30,
    listing_count=150,
    rss_member=256 * KIB, rss_part=512 * KIB,
    repeats=2,
)  # fmt: skip


class Resources:
    """Every service and mount started, so ``close`` can stop them all (mounts first)."""

    def __init__(self, faults: str = "") -> None:
        self.services: list[Service] = []
        self.mounts: list[Mount] = []
        self.faults = faults

    def service(self, data_dir: Path, part_size: int) -> Service:
        service = Service(data_dir, part_size, self.faults)
        self.services.append(service)
        return service

    @contextmanager
    def mounted(
        self, mountpoint: Path, url: str, *extra: str, metadata_tps: float | None = 1000
    ) -> Iterator[Mount]:
        mount = Mount(mountpoint, url, *extra, metadata_tps=metadata_tps)
        self.mounts.append(mount)
        try:
            yield mount
        finally:
            died = mount.process.poll() is not None  # the daemon should still be running here
            code = mount.stop()
            self.mounts.remove(mount)
            for line in mount.problems():
                log(f"    mount log: {line}")
            if code != 0 or died:
                log(f"    mount exited with status {code}" + (" before it was stopped" if died else ""))
                for line in mount.lines[-15:]:
                    log(f"    mount log tail: {line.rstrip()}")

    def close(self) -> None:
        for mount in self.mounts:
            try:
                mount.stop()
            except Exception as exc:  # keep stopping the rest
                log(f"stopping mount {mount.path}: {exc!r}")
        for service in self.services:
            try:
                service.stop()
            except Exception as exc:
                log(f"stopping service {service.url}: {exc!r}")


# -- data ----------------------------------------------------------------------------------------


def tiny_fastq_gz(index: int, reads: int = 3, length: int = 50) -> bytes:
    rng = random.Random(SEED + index)
    text = "".join(
        f"@r{index}_{i}\n{''.join(rng.choices('ACGT', k=length))}\n+\n{'I' * length}\n" for i in range(reads)
    )
    return zlib.compress(text.encode(), 6, wbits=31)  # wbits 31: gzip framing


def download(omics: Any, store_id: str, read_set_id: str, file: str, target: Path) -> None:
    """One file of a read set, every part, into ``target``."""
    meta = omics.get_read_set_metadata(sequenceStoreId=store_id, id=read_set_id)
    parts = meta["files"][file.lower()]["totalParts"]
    with open(target, "wb") as out:
        for number in range(1, parts + 1):
            reply = omics.get_read_set(sequenceStoreId=store_id, id=read_set_id, file=file, partNumber=number)
            for chunk in reply["payload"].iter_chunks(MIB):
                out.write(chunk)


def active_layout(omics: Any, store_id: str, read_set_id: str) -> dict[str, Any]:
    meta = omics.get_read_set_metadata(sequenceStoreId=store_id, id=read_set_id)
    if meta["status"] != "ACTIVE":
        raise RuntimeError(f"read set {read_set_id} is {meta['status']}: {meta.get('statusMessage')}")
    return dict(meta["files"]["source1"])


# -- measuring -----------------------------------------------------------------------------------


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, errors="replace", check=False, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {result.returncode}: {result.stderr.strip()[-500:]}")
    return result


def dd(path: Path) -> tuple[float, int]:
    """``dd if=PATH of=/dev/null bs=1M``: (seconds, bytes copied)."""
    start = time.perf_counter()
    result = run(["dd", f"if={path}", "of=/dev/null", "bs=1M"])
    seconds = time.perf_counter() - start
    return seconds, dd_bytes(result.stderr)


def dd_bytes(stderr: str) -> int:
    match = re.search(r"^(\d+) bytes", stderr, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"cannot read dd's byte count from {stderr!r}")
    return int(match.group(1))


def best_median(values: list[float]) -> tuple[float, float]:
    return min(values), statistics.median(values)


def join_counts(values: list[int]) -> str:
    """One number when every run made the same count, else each run's."""
    return str(values[0]) if len(set(values)) == 1 else "/".join(map(str, values))


def markdown(header: list[str], rows: list[list[str]]) -> str:
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Section:
    name: str
    title: str
    notes: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def text(self) -> str:
        parts = [f"## {self.title}", ""]
        parts += [f"- {note}" for note in self.notes]
        for table in self.tables:
            parts += ["", table]
        parts += ["", f"Section runtime: {self.seconds:.1f} s", ""]
        return "\n".join(parts)


class Bench:
    def __init__(self, workdir: Path, sizes: Sizes, resources: Resources) -> None:
        self.workdir = workdir
        self.sizes = sizes
        self.res = resources

    # -- 1. sequential ---------------------------------------------------------------------------

    def sequential(self) -> Section:
        s = self.sizes
        section = Section("sequential", "Sequential read of one large read set")
        work = self.workdir / "sequential"
        work.mkdir()
        source = work / "reads.fastq.gz"
        t0 = time.perf_counter()
        member = fastq_gzip_member(s.seq_member, SEED, READ_LENGTH, batch=1024)
        size = write_copies(source, member, -(-s.seq_bytes // len(member)))
        generated = time.perf_counter() - t0
        log(f"  generated {size} bytes of FASTQ.gz in {generated:.1f} s")

        service = self.res.service(work / "service", s.seq_part)
        omics = service.client()
        store_id = omics.create_sequence_store(name="bench-sequential")["id"]
        t0 = time.perf_counter()
        read_set_id = upload(omics, store_id, "FASTQ", {"SOURCE1": source}, min(s.seq_part, 100 * MIB),
                             name="big-reads", subjectId="subject-1", sampleId="sample-1")  # fmt: skip
        uploaded = time.perf_counter() - t0
        service.drain()
        processed = time.perf_counter() - t0 - uploaded
        layout = active_layout(omics, store_id, read_set_id)
        if layout["contentLength"] != size:
            raise RuntimeError(f"stored size {layout['contentLength']} != uploaded {size}")
        parts = [
            (number, min(layout["partSize"], size - (number - 1) * layout["partSize"]))
            for number in range(1, layout["totalParts"] + 1)
        ]
        log(f"  uploaded in {uploaded:.1f} s, processed in {processed:.1f} s; {len(parts)} parts")

        def get_part(number: int, length: int) -> int:
            reply = omics.get_read_set(
                sequenceStoreId=store_id, id=read_set_id, file="SOURCE1", partNumber=number
            )
            got = sum(len(chunk) for chunk in reply["payload"].iter_chunks(MIB))
            if got != length:
                raise RuntimeError(f"GetReadSet part {number}: {got} bytes, expected {length}")
            return got

        raw: list[float] = []
        raw_calls: list[int] = []
        for _ in range(s.repeats):
            service.reset_stats()
            start = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                moved = sum(pool.map(lambda part: get_part(*part), parts))
            raw.append(time.perf_counter() - start)
            raw_calls.append(service.requests().get("GetReadSet", 0))
            assert moved == size
            log(f"  raw GetReadSet x4: {raw[-1]:.2f} s, {size / MIB / raw[-1]:.1f} MiB/s")

        mounted: list[float] = []
        mount_calls: list[int] = []
        for index in range(s.repeats):
            with self.res.mounted(work / "mnt", service.url) as mount:
                path = mount.path / "sequence-stores" / "bench-sequential" / "big-reads.fastq.gz"
                if path.stat().st_size != size:
                    raise RuntimeError(f"{path} has size {path.stat().st_size}, expected {size}")
                service.reset_stats()
                seconds, copied = dd(path)
                if copied != size:
                    raise RuntimeError(f"dd copied {copied} bytes of {size}")
                mounted.append(seconds)
                mount_calls.append(service.requests().get("GetReadSet", 0))
                log(f"  mount cold dd run {index + 1}: {seconds:.2f} s, {size / MIB / seconds:.1f} MiB/s, "
                    f"{mount_calls[-1]} GetReadSet")  # fmt: skip

        mib = size / MIB
        rows = []
        for label, timings, calls in (
            ("raw API: boto3 GetReadSet, 4 parts in flight", raw, raw_calls),
            ("mount, cold: dd bs=1M (fresh mount per run)", mounted, mount_calls),
        ):
            best, median = best_median(timings)
            rows.append([label, f"{mib:.1f}", str(len(timings)), f"{best:.2f}", f"{median:.2f}",
                         f"{mib / best:.1f}", f"{mib / median:.1f}", join_counts(calls)])  # fmt: skip
        ratio_best = min(raw) / min(mounted)
        ratio_median = statistics.median(raw) / statistics.median(mounted)
        rows.append(["mount / raw (throughput ratio; target >= 0.9)", "", "", "", "",
                     f"{ratio_best:.2f}", f"{ratio_median:.2f}", ""])  # fmt: skip
        header = [
            "read",
            "MiB",
            "runs",
            "best s",
            "median s",
            "best MiB/s",
            "median MiB/s",
            "GetReadSet calls",
        ]
        section.tables.append(markdown(header, rows))
        section.notes += [
            f"read set: FASTQ.gz of {size} bytes ({mib:.1f} MiB), {len(parts)} parts of partSize "
            f"{layout['partSize']} (last {parts[-1][1]} bytes); generated in {generated:.1f} s, "
            f"uploaded (multipart, one thread) in {uploaded:.1f} s, processed to ACTIVE in {processed:.1f} s",
            "mount: `--metadata-tps 1000`, default 1 GiB memory cache, no `--cache-dir`; the file is stat-ed "
            "before dd is timed",
        ]
        section.data = {
            "size": size, "parts": len(parts), "part_size": layout["partSize"],
            "generate_s": generated, "upload_s": uploaded, "process_s": processed,
            "raw_s": raw, "raw_get_read_set": raw_calls,
            "mount_s": mounted, "mount_get_read_set": mount_calls,
            "ratio_best": ratio_best, "ratio_median": ratio_median,
        }  # fmt: skip
        return section

    # -- 2. region queries -----------------------------------------------------------------------

    def regions(self) -> Section:
        s = self.sizes
        section = Section("regions", "Random samtools region queries on a multi-part indexed BAM")
        work = self.workdir / "regions"
        work.mkdir()
        t0 = time.perf_counter()
        sample = make_sample(work / "sample", pairs=s.region_pairs)
        generated = time.perf_counter() - t0
        bam_size = sample.bam.stat().st_size
        log(f"  make_sample({s.region_pairs} pairs) in {generated:.1f} s; BAM {bam_size / MIB:.1f} MiB")

        service = self.res.service(work / "service", s.region_part)
        omics = service.client()
        t0 = time.perf_counter()
        loaded = load_sample(omics, service.s3_root, sample, service.drain, store_name="bench-regions")
        load_seconds = time.perf_counter() - t0
        store_id, bam_id = loaded.sequence_store_id, loaded.read_sets["bam"]
        layout = active_layout(omics, store_id, bam_id)
        # The service stamps an @CO provenance line into the header, so the local baseline is the
        # stored BAM and index, downloaded, not make_sample's own files.
        local_bam = work / "local" / "NA12878-aligned.bam"
        local_bam.parent.mkdir()
        download(omics, store_id, bam_id, "SOURCE1", local_bam)
        download(omics, store_id, bam_id, "INDEX", Path(str(local_bam) + ".bai"))
        bam_size = local_bam.stat().st_size
        if layout["contentLength"] != bam_size:
            raise RuntimeError(f"stored BAM is {layout['contentLength']} bytes, downloaded {bam_size}")
        log(f"  loaded in {load_seconds:.1f} s; BAM: {layout['totalParts']} parts of {layout['partSize']}")

        contigs = {}
        for line in Path(str(sample.reference) + ".fai").read_text().splitlines():
            name, length = line.split("\t")[:2]
            contigs[name] = int(length)
        rng = random.Random(SEED)
        regions = []
        for _ in range(s.region_queries):
            contig = rng.choice(sorted(contigs))
            start = rng.randint(1, contigs[contig] - s.region_length + 1)
            regions.append(f"{contig}:{start}-{start + s.region_length - 1}")

        def query_pass(bam: Path) -> tuple[float, list[int]]:
            counts = []
            start = time.perf_counter()
            for region in regions:
                counts.append(int(run(["samtools", "view", "-c", str(bam), region]).stdout))
            return time.perf_counter() - start, counts

        rows: dict[str, tuple[list[float], list[dict[str, int]]]] = {}
        LOCAL = "local file"

        def record(label: str, bam: Path, expected: list[int] | None) -> list[int]:
            service.reset_stats()
            seconds, counts = query_pass(bam)
            if expected is not None and counts != expected:
                wrong = sum(a != b for a, b in zip(counts, expected, strict=True))
                raise RuntimeError(f"{label}: {wrong} of {len(counts)} counts differ from the local file's")
            calls = service.requests() if label != LOCAL else {}
            times, call_list = rows.setdefault(label, ([], []))
            times.append(seconds)
            call_list.append(calls)
            log(f"  {label}: {seconds:.2f} s; requests {calls}")
            return counts

        expected = record(LOCAL, local_bam, None)
        for _ in range(s.repeats - 1):
            record(LOCAL, local_bam, expected)
        bam_rel = Path("sequence-stores") / "bench-regions" / "NA12878-aligned.bam"
        cold, warm = "mount, cold (fresh mount)", "mount, warm (same mount, 2nd pass)"
        for _ in range(s.repeats):
            with self.res.mounted(work / "mnt", service.url) as mount:
                record(cold, mount.path / bam_rel, expected)
                record(warm, mount.path / bam_rel, expected)
        cache_dir = work / "cache"
        filling = "mount, cold, filling --cache-dir"
        disk = "mount, warm from disk tier (fresh mount, same --cache-dir)"
        with self.res.mounted(work / "mnt", service.url, "--cache-dir", str(cache_dir)) as mount:
            record(filling, mount.path / bam_rel, expected)
        for _ in range(s.repeats):
            with self.res.mounted(work / "mnt", service.url, "--cache-dir", str(cache_dir)) as mount:
                record(disk, mount.path / bam_rel, expected)

        local_median = statistics.median(rows[LOCAL][0])
        table = []
        for label, (times, calls) in rows.items():
            best, median = best_median(times)
            get = join_counts([c.get("GetReadSet", 0) for c in calls]) if label != LOCAL else ""
            meta = join_counts([c.get("GetReadSetMetadata", 0) for c in calls]) if label != LOCAL else ""
            data_meta = ("GetReadSet", "GetReadSetMetadata")
            other = join_counts(
                [sum(n for op, n in c.items() if op not in data_meta) for c in calls]
            ) if label != LOCAL else ""  # fmt: skip
            table.append([label, str(len(times)), f"{best:.2f}", f"{median:.2f}",
                          f"{1000 * median / len(regions):.0f}", f"{median / local_median:.2f}", get, meta,
                          other])  # fmt: skip
        header = ["pass", "runs", "best s", "median s", "median ms/query", "median / local", "GetReadSet",
                  "GetReadSetMetadata", "other calls"]  # fmt: skip
        section.tables.append(markdown(header, table))
        warm_ratio = statistics.median(rows[warm][0]) / local_median
        disk_ratio = statistics.median(rows[disk][0]) / local_median
        section.notes += [
            f"BAM: {bam_size} bytes ({bam_size / MIB:.1f} MiB), {s.region_pairs} pairs from make_sample "
            f"(contigs {', '.join(f'{k} {v} bp' for k, v in contigs.items())}), {layout['totalParts']} parts "
            f"of partSize {layout['partSize']}; generated in {generated:.1f} s, loaded (reference, BAM, "
            f"CRAM, FASTQ, uBAM) in {load_seconds:.1f} s",
            f"{len(regions)} random {s.region_length} bp regions, one `samtools view -c` process each; "
            "every mount pass's counts equal the local file's",
            f"warm / local = {warm_ratio:.2f} (target <= 1.5); disk tier / local = {disk_ratio:.2f}",
            'requests are the service\'s, per pass; "other calls" are listings (stores, read sets)',
        ]
        section.data = {
            "bam_size": bam_size, "pairs": s.region_pairs, "parts": layout["totalParts"],
            "part_size": layout["partSize"], "generate_s": generated, "load_s": load_seconds,
            "regions": regions,
            "passes": {label: {"seconds": t, "requests": c} for label, (t, c) in rows.items()},
            "warm_over_local": warm_ratio, "disk_over_local": disk_ratio,
        }  # fmt: skip
        return section

    # -- 3. listing ------------------------------------------------------------------------------

    def listing(self) -> Section:
        s = self.sizes
        section = Section("listing", f"`ls` and `ls -l` of a store with {s.listing_count} read sets")
        work = self.workdir / "listing"
        tiny = work / "tiny"
        tiny.mkdir(parents=True)
        service = self.res.service(work / "service", 100 * MIB)
        omics = service.client(pool=16)
        store_id = omics.create_sequence_store(name="bench-listing")["id"]

        def one(index: int) -> str:
            path = tiny / f"rs-{index:04d}.fastq.gz"
            path.write_bytes(tiny_fastq_gz(index))
            return upload(omics, store_id, "FASTQ", {"SOURCE1": path}, 100 * MIB, name=f"rs-{index:04d}",
                          subjectId="subject-1", sampleId=f"sample-{index % 10}")  # fmt: skip

        t0 = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(one, range(s.listing_count)))
        created = time.perf_counter() - t0
        service.drain()
        processed = time.perf_counter() - t0 - created
        log(f"  {len(ids)} read sets uploaded in {created:.1f} s, processed in {processed:.1f} s")

        rows: list[list[str]] = []
        data: list[dict[str, Any]] = []
        store_rel = Path("sequence-stores") / "bench-listing"

        def measure(config: str, operation: str, mount: Mount) -> None:
            folder = mount.path / store_rel
            service.reset_stats()
            start = time.perf_counter()
            if operation == "ls":
                out = run(["sh", "-c", f"ls '{folder}' | wc -l"]).stdout
                seconds = time.perf_counter() - start
                entries, zero = int(out.strip()), 0
            else:
                out = run(["ls", "-l", str(folder)]).stdout
                seconds = time.perf_counter() - start
                files = [line.split() for line in out.splitlines() if line.startswith("-")]
                entries, zero = len(files), sum(1 for f in files if f[4] == "0")
            calls = service.requests()
            listed, meta = calls.get("ListReadSets", 0), calls.get("GetReadSetMetadata", 0)
            other = sum(calls.values()) - listed - meta
            rows.append([config, f"`{operation}`", f"{seconds:.2f}", str(listed), str(meta), str(other),
                         str(entries), str(zero) if operation != "ls" else ""])  # fmt: skip
            data.append({"config": config, "operation": operation, "seconds": seconds, "requests": calls,
                         "entries": entries, "size_zero": zero})  # fmt: skip
            log(f"  {config} {operation}: {seconds:.2f} s, {calls}, {entries} entries, {zero} size 0")
            if operation != "ls" and entries != s.listing_count:
                raise RuntimeError(f"ls -l showed {entries} files, expected {s.listing_count}")

        cache_dir = work / "cache"
        with self.res.mounted(work / "mnt", service.url, metadata_tps=None) as mount:
            measure("fresh mount, --metadata-tps 5 (default)", "ls", mount)
            measure("fresh mount, --metadata-tps 5 (default)", "ls -l", mount)
        with self.res.mounted(
            work / "mnt", service.url, "--cache-dir", str(cache_dir), metadata_tps=50
        ) as mount:
            measure("fresh mount, --metadata-tps 50, empty --cache-dir", "ls", mount)
            measure("fresh mount, --metadata-tps 50, empty --cache-dir", "ls -l", mount)
        with self.res.mounted(
            work / "mnt", service.url, "--cache-dir", str(cache_dir), metadata_tps=None
        ) as mount:
            measure("remount, --metadata-tps 5, warm --cache-dir", "ls -l", mount)

        header = ["mount", "command", "seconds", "ListReadSets", "GetReadSetMetadata", "other calls",
                  "entries", "files shown with size 0"]  # fmt: skip
        section.tables.append(markdown(header, rows))
        section.notes += [
            f"{s.listing_count} single-end FASTQ read sets of about {len(tiny_fastq_gz(0))} bytes (gzip, "
            "3 records), "
            f"created with multipart uploads on 8 threads in {created:.1f} s, processed in {processed:.1f} s",
            "`ls` is `sh -c 'ls STORE | wc -l'` (entries include by-id, by-sample and by-subject); each "
            "command runs once per mount; ListReadSets pages hold 100 read sets",
            "other calls: ListSequenceStores and the like, made while looking up the store folder",
        ]
        section.data = {"count": s.listing_count, "create_s": created, "process_s": processed, "runs": data}
        return section

    # -- 4. peak RSS -----------------------------------------------------------------------------

    def rss(self) -> Section:
        s = self.sizes
        section = Section("rss", f"Peak RSS of the daemon with {s.rss_files} files read at once")
        work = self.workdir / "rss"
        files = work / "files"
        files.mkdir(parents=True)
        member = fastq_gzip_member(s.rss_member, SEED + 1, READ_LENGTH, batch=1024)
        sizes = {}
        for index in range(s.rss_files):
            sizes[f"file-{index:02d}"] = write_copies(
                files / f"file-{index:02d}.fastq.gz", member, 1 + index % 8
            )
        total = sum(sizes.values())
        log(f"  {len(sizes)} files, {total / MIB:.1f} MiB in all")

        service = self.res.service(work / "service", s.rss_part)
        omics = service.client(pool=8)
        store_id = omics.create_sequence_store(name="bench-rss")["id"]

        def one(name: str) -> str:
            return upload(omics, store_id, "FASTQ", {"SOURCE1": files / f"{name}.fastq.gz"}, 100 * MIB,
                          name=name, subjectId="subject-1", sampleId="sample-1")  # fmt: skip

        t0 = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(one, sizes))
        service.drain()
        loaded = time.perf_counter() - t0
        parts = sum(-(-size // s.rss_part) for size in sizes.values())
        log(f"  uploaded and processed in {loaded:.1f} s ({parts} parts)")

        cache = s.rss_cache
        with self.res.mounted(work / "mnt", service.url, "--cache-size", str(cache)) as mount:
            folder = mount.path / "sequence-stores" / "bench-rss"
            run(["ls", "-l", str(folder)])
            baseline = mount.status_kib("VmRSS")
            samples: list[int] = []
            stop = threading.Event()

            def sample() -> None:
                while not stop.wait(0.05):
                    try:
                        samples.append(mount.status_kib("VmRSS"))
                    except (OSError, RuntimeError):
                        return

            sampler = threading.Thread(target=sample, daemon=True)
            service.reset_stats()
            sampler.start()
            start = time.perf_counter()
            readers = {
                name: subprocess.Popen(
                    ["dd", f"if={folder / (name + '.fastq.gz')}", "of=/dev/null", "bs=1M"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for name in sizes
            }
            failures = []
            for name, reader in readers.items():
                _, err = reader.communicate()
                if reader.returncode != 0 or dd_bytes(err) != sizes[name]:
                    failures.append(f"{name}: exit {reader.returncode}: {err.strip()[-200:]}")
            seconds = time.perf_counter() - start
            stop.set()
            sampler.join()
            peak = mount.status_kib("VmHWM")
            calls = service.requests()
            if failures:
                raise RuntimeError("concurrent reads failed:\n" + "\n".join(failures))

        limit = cache + 150 * MIB
        peak_bytes = peak * KIB
        rows = [[
            f"{len(sizes)} x dd bs=1M at once", f"{total / MIB:.1f}", f"{seconds:.2f}",
            f"{total / MIB / seconds:.1f}",
            f"{calls.get('GetReadSet', 0)} ({parts} parts)", f"{baseline / KIB:.0f}",
            f"{max(samples, default=0) / KIB:.0f}", f"{peak_bytes / MIB:.0f}", f"{limit / MIB:.0f}",
            "yes" if peak_bytes <= limit else "**no**",
        ]]  # fmt: skip
        header = ["read", "MiB", "seconds", "MiB/s", "GetReadSet calls", "RSS before MiB",
                  "max sampled RSS MiB", "VmHWM MiB", "cache-size + 150 MiB", "within"]  # fmt: skip
        section.tables.append(markdown(header, rows))
        section.notes += [
            f"{len(sizes)} FASTQ.gz read sets of {min(sizes.values()) / MIB:.1f}-"
            f"{max(sizes.values()) / MIB:.1f} MiB ({total / MIB:.1f} MiB in all), {parts} parts of partSize "
            f"{s.rss_part}; uploaded and processed in {loaded:.1f} s",
            f"mount: `--cache-size {cache}` (read-ahead: {ReadAheadConfig().budget_fraction:g} of it), "
            "`--metadata-tps 1000`; an "
            "`ls -l` of the store before the reads; RSS sampled every 50 ms; VmHWM read at the end",
        ]
        section.data = {
            "files": len(sizes), "total": total, "parts": parts, "part_size": s.rss_part, "cache_size": cache,
            "seconds": seconds, "requests": calls, "baseline_kib": baseline,
            "max_sampled_kib": max(samples, default=0),
            "vmhwm_kib": peak, "limit_bytes": limit, "within": peak_bytes <= limit,
        }  # fmt: skip
        return section


def header_text(sizes: Sizes, quick: bool, total_seconds: float, bandwidth: str | None) -> str:
    return "\n".join(
        [
            "# omicsfs mount read benchmark" + (" (--quick)" if quick else ""),
            "",
            f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
            f"- host: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"boto3 {boto3.__version__}, botocore {botocore.__version__}, "
            f"{run(['samtools', '--version']).stdout.splitlines()[0]}",
            "- service: `omicsfs serve --processing-delay 0 --log-level WARNING`, one per section; mount: "
            "`python -m omicsfs mount MNT --endpoint-url URL --foreground` (flags per section)",
            "- per-connection bandwidth: "
            + (f"`--faults bandwidth={bandwidth}` (data bodies paced)" if bandwidth else "loopback, unpaced"),
            f"- repeats: {sizes.repeats}; MiB = 2**20 bytes; total runtime {total_seconds:.1f} s",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of under two minutes")
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, help="run only this section (repeatable)"
    )
    parser.add_argument("--repeats", type=int, help="runs per measurement (default 3, --quick 2)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (for debugging)")
    parser.add_argument(
        "--bandwidth", metavar="B",
        help="pace every GetReadSet/GetReference body to B per second per connection (e.g. 100MiB), "
        "as the real service's per-connection rate does; default: loopback speed",
    )  # fmt: skip
    parser.add_argument("--seq-mib", type=int, help="size of the sequential section's read set in MiB")
    parser.add_argument("--label", help="suffix for the results files (e.g. bw100)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    if args.seq_mib is not None:
        sizes = Sizes(**{**sizes.__dict__, "seq_bytes": args.seq_mib * MIB})
    if args.repeats is not None:
        if args.repeats <= 0:
            parser.error("--repeats must be positive")
        sizes = Sizes(**{**sizes.__dict__, "repeats": args.repeats})
    chosen = [name for name in SECTIONS if not args.only or name in args.only]
    for tool in ("samtools", "dd", "fusermount3"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed")

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="omicsfs-mount-read-"))
    resources = Resources(f"bandwidth={args.bandwidth}" if args.bandwidth else "")
    bench = Bench(workdir, sizes, resources)
    sections: list[Section] = []
    try:
        for name in chosen:
            log(f"== {name} ({workdir / name})")
            t0 = time.perf_counter()
            section: Section = getattr(bench, name)()
            section.seconds = time.perf_counter() - t0
            sections.append(section)
            log("")
            log(section.text())
        total = time.perf_counter() - started
        body = "\n".join(section.text() for section in sections)
        text = header_text(sizes, args.quick, total, args.bandwidth) + body
        # A partial run (--only) writes its own files, so it never replaces a full run's results.
        stem = "mount_read" + ("-quick" if args.quick else "")
        if chosen != list(SECTIONS):
            stem += "-" + "-".join(chosen)
        if args.label:
            stem += "-" + args.label
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (RESULTS_DIR / f"{stem}.md").write_text(text)
        document = {
            "quick": args.quick,
            "bandwidth": args.bandwidth,
            "sizes": sizes.__dict__,
            "total_seconds": total,
            "sections": {s.name: {**s.data, "seconds": s.seconds, "notes": s.notes} for s in sections},
        }
        (RESULTS_DIR / f"{stem}.json").write_text(json.dumps(document, indent=2) + "\n")
        log(f"total {total:.1f} s; written to {(RESULTS_DIR / stem).relative_to(REPO_ROOT)}.md and .json")
    finally:
        resources.close()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
