"""Both data planes against the tools users would pick instead, on one service, in one run.

Run from the repository root, as root (FUSE)::

    .venv/bin/python benchmarks/data_planes.py [--seq-mib 512] [--pairs 1500000] [--queries 100]
        [--listing 1000] [--shapes loopback,region] [--label NAME]

One ``omicsfs serve`` (real 100 MiB parts) per network shape holds: a FASTQ.gz read set of
``--seq-mib`` MiB; the sample BAM (``make_sample`` with ``--pairs`` pairs: a few 100 MiB parts)
and its index; ``--listing`` tiny read sets in a store of their own. Shapes: ``loopback``
(unpaced) and ``region`` (``bandwidth=100MiB`` per connection and 20 ms added to every request,
about a real region). Contestants, each on a fresh mount (cold) unless said:

- ``omicsfs parts``: ``omicsfs mount --data-plane parts``;
- ``omicsfs s3``: ``omicsfs mount --s3-endpoint-url`` (auto: ranged GETs);
- ``rclone``: ``rclone mount :s3,...:BUCKET/PREFIX --read-only --vfs-cache-mode off
  --buffer-size 16M --vfs-read-chunk-size 8M --vfs-read-chunk-size-limit 256M`` (rclone's
  documented tuning for streaming reads without a disk cache);
- ``s3fs``: ``s3fs BUCKET:/PREFIX -o ro,use_path_request_style,parallel_count=10,multireq_max=20``
  (its parallel download options; no ``use_cache`` disk cache);
- ``raw parts``: boto3 GetReadSet of every part, 4 in flight; ``raw ranges``: boto3 ranged
  GetObject of 8 MiB, 4 in flight (sequential only);
- ``Transfer Manager``: aws-healthomics-tools downloading the read set to this disk.

Measured: sequential (``dd bs=1M``, and fio ``rw=read bs=256k``); random 256 KiB reads (fio
``rw=randread bs=256k direct=1``: 64 MiB of distinct blocks in random order); time to first byte
(open and read 4 KiB of a fresh mount's file); 100 ``samtools view -c`` 10 kb region queries on
the BAM (omicsfs only: rclone and s3fs would need the index beside it), cold then warm, with
bytes fetched from the service against the bytes htslib reads (its read() calls on the local
BAM and BAI under strace); ``ls -l`` of the listing store (seconds, and the service's calls).
Prints a table per shape and writes benchmarks/results/data_planes[-LABEL].{md,json,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import MIB, Mount, Service, log, write_copies

from omicsfs.daemon.mounttable import mount_table
from omicsfs.sample.data import SampleFiles, fastq_gzip_member, make_sample
from omicsfs.sample.load import load_sample, upload

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
PART = 100 * MIB
SHAPES = {"loopback": "", "region": "bandwidth=100MiB;latency=20ms"}


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {result.stderr.strip()[-400:]}")
    return result


def wait_mounted(point: Path, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while mount_table().get(str(point)) is None:
        if time.monotonic() > end:
            raise RuntimeError(f"{point} did not mount")
        time.sleep(0.05)


@dataclass
class Data:
    store: str
    seq_id: str
    seq_size: int
    seq_key: str
    bam_key: str
    bucket: str
    prefix: str
    regions: list[str]
    local_bam: Path
    htslib_bytes: int
    listing_store: str


@dataclass
class Row:
    seconds: dict[str, list[float]] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)


class Bench:
    def __init__(self, work: Path, faults: str, args: argparse.Namespace, sample: SampleFiles) -> None:
        self.work = work
        self.args = args
        self.sample = sample
        self.service = Service(work / "service", PART, faults)
        self.omics = self.service.client(pool=20)
        self.s3 = boto3_s3(self.service)

    # -- data -----------------------------------------------------------------------------------

    def load(self) -> Data:
        args, omics = self.args, self.omics
        source = self.work / "reads.fastq.gz"
        member = fastq_gzip_member(8 * MIB, 20240601, 150, batch=1024)
        size = write_copies(source, member, -(-args.seq_mib * MIB // len(member)))
        store = omics.create_sequence_store(name="bench")["id"]
        seq_id = upload(
            omics, store, "FASTQ", {"SOURCE1": source}, PART, name="big", subjectId="s", sampleId="s"
        )
        source.unlink()
        sample = self.sample
        loaded = load_sample(omics, self.service.s3_root, sample, self.service.drain, store_name="bench-bam")
        self.service.drain()
        seq_uri = omics.get_read_set_metadata(sequenceStoreId=store, id=seq_id)["files"]["source1"][
            "s3Access"
        ]["s3Uri"]
        bam_meta = omics.get_read_set_metadata(
            sequenceStoreId=loaded.sequence_store_id, id=loaded.read_sets["bam"]
        )
        bam_uri = bam_meta["files"]["source1"]["s3Access"]["s3Uri"]
        local_bam = self.work / "local.bam"
        for file, target in (("SOURCE1", local_bam), ("INDEX", Path(f"{local_bam}.bai"))):
            download(omics, loaded.sequence_store_id, loaded.read_sets["bam"], file, target)
        bucket, key = seq_uri[5:].split("/", 1)
        prefix = key.rsplit("/readSet/", 1)[0] + "/"
        contigs = dict(
            line.split("\t")[:2] for line in Path(f"{sample.reference}.fai").read_text().splitlines()
        )
        rng = random.Random(7)
        regions = []
        for _ in range(args.queries):
            contig = rng.choice(sorted(contigs))
            start = rng.randint(1, int(contigs[contig]) - 10_000)
            regions.append(f"{contig}:{start}-{start + 9_999}")
        listing_store = omics.create_sequence_store(name="bench-listing")["id"]
        tiny = self.work / "tiny.fastq.gz"
        tiny.write_bytes(fastq_gzip_member(300, 1, 50, batch=1))

        def one(index: int) -> None:
            upload(
                self.service.client(),
                listing_store,
                "FASTQ",
                {"SOURCE1": tiny},
                PART,
                name=f"r{index:04d}",
                subjectId="s",
                sampleId="s",
            )

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(args.listing)))
        self.service.drain()
        return Data(
            store,
            seq_id,
            size,
            key,
            bam_uri[5:].split("/", 1)[1],
            bucket,
            prefix,
            regions,
            local_bam,
            htslib_read_bytes(local_bam, regions),
            listing_store,
        )

    # -- contestants ----------------------------------------------------------------------------

    @contextmanager
    def omicsfs(self, plane: str) -> Iterator[Callable[[str], Path]]:
        """Paths by role: ``seq`` (the big FASTQ.gz), ``bam``, ``listing`` (the tiny read sets' folder)."""
        extra = ["--data-plane", "parts"] if plane == "parts" else ["--s3-endpoint-url", self.service.s3_url]
        mount = Mount(self.work / "mnt", self.service.url, "--cache-size", "2G", *extra)
        stores = mount.path / "sequence-stores"
        paths = {
            "seq": stores / "bench" / "big.fastq.gz",
            "bam": stores / "bench-bam" / "NA12878-aligned.bam",
            "listing": stores / "bench-listing",
        }
        try:
            yield paths.__getitem__
        finally:
            mount.stop()

    @contextmanager
    def rclone(self, data: Data) -> Iterator[Callable[[str], Path]]:
        point = self.work / "rclone"
        point.mkdir(exist_ok=True)
        remote = (
            f":s3,provider=Other,endpoint='{self.service.s3_url}',access_key_id=x,secret_access_key=x,"
            f"force_path_style=true:{data.bucket}/{data.prefix}"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        child = subprocess.Popen(
            [
                "rclone",
                "mount",
                remote,
                str(point),
                "--read-only",
                "--vfs-cache-mode",
                "off",
                "--buffer-size",
                "16M",
                "--vfs-read-chunk-size",
                "8M",
                "--vfs-read-chunk-size-limit",
                "256M",
                "--dir-cache-time",
                "1h",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_mounted(point)
            yield lambda role: point / data.seq_key[len(data.prefix) :]
        finally:
            subprocess.run(["fusermount3", "-u", "-z", str(point)], check=False, capture_output=True)
            child.terminate()
            child.wait(30)

    @contextmanager
    def s3fs(self, data: Data) -> Iterator[Callable[[str], Path]]:
        point = self.work / "s3fs"
        point.mkdir(exist_ok=True)
        secret = self.work / "s3fs.passwd"
        secret.write_text("x:x\n")
        secret.chmod(0o600)
        run(
            [
                "s3fs",
                f"{data.bucket}:/{data.prefix.rstrip('/')}",
                str(point),
                "-o",
                f"url={self.service.s3_url},use_path_request_style,passwd_file={secret},ro,parallel_count=10,"
                "multireq_max=20",
            ]
        )
        try:
            wait_mounted(point)
            yield lambda role: point / data.seq_key[len(data.prefix) :]
        finally:
            subprocess.run(["fusermount3", "-u", "-z", str(point)], check=False, capture_output=True)

    # -- measurements ---------------------------------------------------------------------------

    def raw_parts(self, data: Data) -> float:
        meta = self.omics.get_read_set_metadata(sequenceStoreId=data.store, id=data.seq_id)
        parts = meta["files"]["source1"]["totalParts"]

        def part(number: int) -> int:
            body = self.omics.get_read_set(
                sequenceStoreId=data.store, id=data.seq_id, file="SOURCE1", partNumber=number
            )["payload"]
            return sum(len(chunk) for chunk in body.iter_chunks(MIB))

        start = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            assert sum(pool.map(part, range(1, parts + 1))) == data.seq_size
        return time.perf_counter() - start

    def raw_ranges(self, data: Data) -> float:
        step = 8 * MIB

        def piece(start: int) -> int:
            end = min(start + step, data.seq_size) - 1
            body = self.s3.get_object(Bucket=data.bucket, Key=data.seq_key, Range=f"bytes={start}-{end}")[
                "Body"
            ]
            return sum(len(chunk) for chunk in body.iter_chunks(MIB))

        begin = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            assert sum(pool.map(piece, range(0, data.seq_size, step))) == data.seq_size
        return time.perf_counter() - begin

    def transfer_manager(self, data: Data) -> float:
        from omics.common.omics_file_types import ReadSetFileName
        from omics.transfer.config import TransferConfig
        from omics.transfer.manager import TransferManager

        target = self.work / "tm.fastq.gz"
        begin = time.perf_counter()
        with TransferManager(
            self.service.client(pool=20), TransferConfig(directory=str(self.work))
        ) as manager:
            manager.download_read_set_file(
                sequence_store_id=data.store,
                read_set_id=data.seq_id,
                server_filename=ReadSetFileName.SOURCE1,
                client_fileobj=str(target),
            )
        seconds = time.perf_counter() - begin
        target.unlink()
        return seconds


def boto3_s3(service: Service) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=service.s3_url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=20),
    )


def download(omics: Any, store: str, read_set: str, file: str, target: Path) -> None:
    meta = omics.get_read_set_metadata(sequenceStoreId=store, id=read_set)
    with open(target, "wb") as out:
        for number in range(1, meta["files"][file.lower()]["totalParts"] + 1):
            body = omics.get_read_set(sequenceStoreId=store, id=read_set, file=file, partNumber=number)[
                "payload"
            ]
            for chunk in body.iter_chunks(MIB):
                out.write(chunk)


def htslib_read_bytes(bam: Path, regions: list[str]) -> int:
    """Bytes samtools reads (its read() calls) from the BAM and its index for all the queries."""
    total = 0
    for region in regions:
        trace = subprocess.run(
            [
                "strace",
                "-f",
                "-qq",
                "-e",
                "trace=openat,read,pread64",
                "samtools",
                "view",
                "-c",
                str(bam),
                region,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stderr
        fds: set[str] = set()
        for line in trace.splitlines():
            opened = re.search(r'openat\(.*"([^"]+)".*\) = (\d+)', line)
            if opened and opened.group(1).startswith(str(bam)):
                fds.add(opened.group(2))
            read = re.search(r"(?:read|pread64)\((\d+),.*\) = (\d+)", line)
            if read and read.group(1) in fds:
                total += int(read.group(2))
    return total


def dd_seconds(path: Path) -> float:
    begin = time.perf_counter()
    run(["dd", f"if={path}", "of=/dev/null", "bs=1M"])
    return time.perf_counter() - begin


def fio_mb_s(path: Path, mode: str, size: int) -> float:
    span = min(size, 512 * MIB)
    args = [
        "fio",
        "--name=t",
        f"--filename={path}",
        f"--rw={mode}",
        "--bs=256k",
        "--ioengine=psync",
        "--readonly",
        f"--size={span}",
        "--output-format=json",
        "--invalidate=0",
    ]
    if mode == "randread":  # each 256 KiB block once, in random order, past the page cache
        args += ["--direct=1", "--io_size=64M", "--randrepeat=1"]
    result = json.loads(run(args).stdout)
    return float(result["jobs"][0]["read"]["bw_bytes"]) / 1e6


def ttfb(path: Path) -> float:
    begin = time.perf_counter()
    with open(path, "rb", buffering=0) as handle:
        handle.read(4096)
    return time.perf_counter() - begin


def queries(bam: Path, regions: list[str]) -> float:
    begin = time.perf_counter()
    for region in regions:
        run(["samtools", "view", "-c", str(bam), region])
    return time.perf_counter() - begin


def measure_shape(work: Path, shape: str, args: argparse.Namespace, sample: SampleFiles) -> dict[str, Any]:
    bench = Bench(work, SHAPES[shape], args, sample)
    try:
        log(f"[{shape}] loading data")
        data = bench.load()
        bench.service.set_faults(SHAPES[shape])  # the data is loaded over plain loopback
        results: dict[str, Any] = {"htslib_bytes": data.htslib_bytes, "seq_bytes": data.seq_size}
        results["raw parts"] = {"seq_s": bench.raw_parts(data)}
        results["raw ranges"] = {"seq_s": bench.raw_ranges(data)}
        results["Transfer Manager"] = {"seq_s": bench.transfer_manager(data)}
        contestants: list[tuple[str, Callable[[], Any]]] = [
            ("omicsfs parts", lambda: bench.omicsfs("parts")),
            ("omicsfs s3", lambda: bench.omicsfs("s3")),
            ("rclone", lambda: bench.rclone(data)),
            ("s3fs", lambda: bench.s3fs(data)),
        ]
        for name, mounted in contestants:
            row: dict[str, float] = {}
            for metric, step in (
                ("seq_s", lambda p: dd_seconds(p)),
                ("fio_read", lambda p: fio_mb_s(p, "read", data.seq_size)),
                ("fio_randread", lambda p: fio_mb_s(p, "randread", data.seq_size)),
                ("ttfb_s", ttfb),
            ):
                with mounted() as path_of:
                    path = path_of("seq")
                    os.stat(path)
                    row[metric] = step(path)
                log(f"  [{shape}] {name} {metric}: {row[metric]:.3f}")
            if name.startswith("omicsfs"):
                with mounted() as path_of:
                    bam = path_of("bam")
                    os.stat(bam)
                    bench.service.reset_stats()
                    row["regions_cold_s"] = queries(bam, data.regions)
                    stats = bench.service.admin("GET", "stats")
                    row["regions_bytes"] = float(sum(stats.get("bytesSent", {}).values()))
                    row["regions_calls"] = float(
                        sum(stats["requests"].get(op, 0) for op in ("GetReadSet", "GetObject"))
                    )
                    row["regions_warm_s"] = queries(bam, data.regions)
                    listing = path_of("listing")
                    bench.service.reset_stats()
                    begin = time.perf_counter()
                    run(["ls", "-l", str(listing)])
                    row["ls_l_s"] = time.perf_counter() - begin
                    row["ls_l_metadata_calls"] = float(bench.service.requests().get("GetReadSetMetadata", 0))
                log(
                    f"  [{shape}] {name} regions cold {row['regions_cold_s']:.1f} s, "
                    f"warm {row['regions_warm_s']:.1f} s, ls -l {row['ls_l_s']:.2f} s"
                )
            results[name] = row
        results["local regions_s"] = queries(data.local_bam, data.regions)
        return results
    finally:
        bench.service.stop()


def report(shape: str, r: dict[str, Any], size: int) -> str:
    mb = size / 1e6
    lines = [
        f"## {shape}",
        "",
        "| contestant | dd MB/s | fio read MB/s | fio randread MB/s | TTFB ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("omicsfs parts", "omicsfs s3", "rclone", "s3fs"):
        row = r[name]
        lines.append(
            f"| {name} | {mb / row['seq_s']:.0f} | {row['fio_read']:.0f} | {row['fio_randread']:.0f} | "
            f"{row['ttfb_s'] * 1000:.0f} |"
        )
    for name in ("raw parts", "raw ranges", "Transfer Manager"):
        lines.append(f"| {name} | {mb / r[name]['seq_s']:.0f} | | | |")
    lines += [
        "",
        "| omicsfs | regions cold s | warm s | local s | fetched / htslib bytes | calls | ls -l s | "
        "metadata calls |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("omicsfs parts", "omicsfs s3"):
        row = r[name]
        lines.append(
            f"| {name} | {row['regions_cold_s']:.1f} | {row['regions_warm_s']:.1f} | "
            f"{r['local regions_s']:.1f} | {row['regions_bytes'] / r['htslib_bytes']:.2f} | "
            f"{row['regions_calls']:.0f} | {row['ls_l_s']:.2f} | {row['ls_l_metadata_calls']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot(all_results: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["omicsfs parts", "omicsfs s3", "rclone", "s3fs"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for axis, (metric, title) in zip(
        axes,
        (
            ("seq", "sequential dd (MB/s)"),
            ("fio_read", "fio read 256k (MB/s)"),
            ("fio_randread", "fio randread 256k (MB/s)"),
        ),
        strict=True,
    ):
        width = 0.8 / len(all_results)
        for index, (shape, results) in enumerate(all_results.items()):
            size = results["seq_bytes"] / 1e6
            values = [size / results[n]["seq_s"] if metric == "seq" else results[n][metric] for n in names]
            axis.bar([i + index * width for i in range(len(names))], values, width, label=shape)
        axis.set_xticks([i + width / 2 for i in range(len(names))], names, rotation=20)
        axis.set_title(title)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seq-mib", type=int, default=512)
    parser.add_argument("--pairs", type=int, default=1_500_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--listing", type=int, default=1000)
    parser.add_argument("--shapes", default="loopback,region")
    parser.add_argument("--label")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    all_results: dict[str, dict[str, Any]] = {}
    text = [
        f"# Data planes ({os.cpu_count()} CPUs; {args.seq_mib} MiB sequential, {args.queries} region "
        f"queries, ls -l of {args.listing} read sets)",
        "",
    ]
    # The simulated sample is made once per run and served by every shape: simulating a million
    # read pairs takes minutes, and the shapes must be measured on the same files anyway.
    samples = Path(tempfile.mkdtemp(prefix="omicsfs-planes-sample-"))
    try:
        sample = make_sample(samples, pairs=args.pairs)
        for shape in args.shapes.split(","):
            work = Path(tempfile.mkdtemp(prefix=f"omicsfs-planes-{shape}-"))
            try:
                results = measure_shape(work, shape, args, sample)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            all_results[shape] = results
            text.append(report(shape, results, results["seq_bytes"]))
            print(text[-1], flush=True)
    finally:
        shutil.rmtree(samples, ignore_errors=True)
    name = "data_planes" + (f"-{args.label}" if args.label else "")
    (RESULTS / f"{name}.md").write_text("\n".join(text))
    (RESULTS / f"{name}.json").write_text(json.dumps(all_results, indent=2))
    plot(all_results, RESULTS / f"{name}.png")
    print(f"wrote {RESULTS / name}.md, .json, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
