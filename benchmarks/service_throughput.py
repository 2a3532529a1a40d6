"""Throughput of the local HealthOmics service's data plane: UploadReadSetPart and GetReadSet.

Run from the repository root (nothing else needs to be running)::

    .venv/bin/python benchmarks/service_throughput.py [--size-mib N] [--repeats R]

What it does:

1. Starts ``omicsfs serve`` in a subprocess on a free port with the real default part size
   (104857600 bytes = 100 MiB), ``--processing-delay 0`` and ``--log-level WARNING``, with its data
   dir in a fresh temporary folder.
2. Writes a FASTQ.gz read set of at least ``--size-mib`` MiB (default 640) to the same temporary
   folder: one ~8 MiB gzip member of seeded pseudo-random 150 bp records, repeated. Concatenated
   gzip members are valid gzip, and the service's FASTQ check (pysam.FastxFile) reads them.
3. UploadReadSetPart with boto3: for 1 and 4 parts in flight (a ThreadPoolExecutor sharing one
   client), ``--repeats`` times each, a fresh CreateMultipartReadSetUpload (FASTQ) followed by every
   100 MiB part (the last one shorter). *Timed*: from the first part's start to the last part's
   reply; each part is read from the local file (page cache, the file was just written) into
   bytes and then sent with ``upload_read_set_part``, so the timing includes that read and the
   service's SHA-256 of the part. Create and the Abort of the repeats that are not kept are not
   timed. The very last upload is kept: CompleteMultipartReadSetUpload (joining the parts) and
   the processing until ACTIVE (``drain``: gzip FASTQ validation, read counting, etag) are timed
   once each, and the read set must then be ACTIVE.
4. GetReadSet with boto3 on that read set: every part, 1 and 4 in flight, ``--repeats`` times.
   *Timed*: from the first request to the last byte of the last part; each ``payload`` is read
   with ``iter_chunks(1 MiB)`` and discarded, and the byte counts are checked against the part
   sizes and the file's ``contentLength``.
5. Baselines to show where the time goes: the same GETs and PUTs issued with ``http.client``
   (one keep-alive connection per worker thread, no signing: the local service does not check
   signatures; GET bodies are read with ``readinto`` into a reused 1 MiB buffer), and reading the
   file from the page cache in 100 MiB parts. The gap between a boto3 row and its http.client row
   is client-side botocore overhead; the http.client row is about what the server can do.

It prints a markdown table (best and median over the repeats; MiB = 2**20 bytes) and writes it to
``benchmarks/results/service_throughput.md`` (gitignored). The temporary folder is removed and
the service stopped at the end, also on failure.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import boto3
import botocore
from harness import MIB, Service, write_copies

from omicsfs.sample.data import fastq_gzip_member

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "benchmarks" / "results" / "service_throughput.md"
PART_SIZE = 104_857_600  # the service's (and AWS's) default partSize
READ_CHUNK = MIB
IN_FLIGHT = (1, 4)
CHUNK_TARGET = 8 * MIB  # compressed size of the one gzip member that is repeated
READ_LENGTH = 150
SEED = 20240601


# -- the service and the read set (harness.py) ----------------------------------------------------


def write_fastq_gz(path: Path, size: int) -> int:
    """Writes at least ``size`` bytes of multi-member FASTQ.gz; returns the file's size."""
    member = fastq_gzip_member(CHUNK_TARGET, SEED, READ_LENGTH)
    return write_copies(path, member, -(-size // len(member)))


def part_ranges(total: int) -> list[tuple[int, int, int]]:
    """(partNumber, offset, length) of every part of a ``total``-byte file."""
    return [
        (number, offset, min(PART_SIZE, total - offset))
        for number, offset in enumerate(range(0, total, PART_SIZE), start=1)
    ]


def read_part(fd: int, offset: int, length: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise RuntimeError(f"short read at {offset}: {len(data)} of {length}")
    return data


# -- timing --------------------------------------------------------------------------------------


@dataclass
class Row:
    operation: str
    in_flight: int
    nbytes: int
    seconds: list[float]

    def cells(self) -> list[str]:
        best, median = min(self.seconds), statistics.median(self.seconds)
        mib = self.nbytes / MIB
        return [
            self.operation,
            str(self.in_flight),
            f"{mib:.1f}",
            str(len(self.seconds)),
            f"{best:.3f}",
            f"{median:.3f}",
            f"{mib / best:.1f}",
            f"{mib / median:.1f}",
        ]


HEADER = ["operation", "parts in flight", "MiB moved", "runs", "best s", "median s", "best MiB/s",
          "median MiB/s"]  # fmt: skip


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join(["---"] + ["---:"] * (len(HEADER) - 1)) + "|"]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def run_parts(
    parts: list[tuple[int, int, int]], in_flight: int, work: Callable[[int, int, int], int]
) -> float:
    """Runs ``work(number, offset, length)`` over every part, ``in_flight`` at a time; returns seconds.

    ``work`` returns the bytes it moved, which must equal the part's length.
    """
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        moved = list(pool.map(lambda part: work(*part), parts))
    seconds = time.perf_counter() - start
    for (number, _, length), got in zip(parts, moved, strict=True):
        if got != length:
            raise RuntimeError(f"part {number}: moved {got} bytes, expected {length}")
    return seconds


@contextmanager
def per_thread_connections(host: str, port: int) -> Iterator[Callable[[], http.client.HTTPConnection]]:
    """One keep-alive HTTPConnection per worker thread, all closed at the end."""
    local = threading.local()
    opened: list[http.client.HTTPConnection] = []
    lock = threading.Lock()

    def connection() -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(host, port, timeout=300)
            local.conn = conn
            with lock:
                opened.append(conn)
        return conn

    try:
        yield connection
    finally:
        for conn in opened:
            conn.close()


# -- the benchmark -------------------------------------------------------------------------------


class Benchmark:
    def __init__(self, service: Service, source: Path, size: int, repeats: int) -> None:
        self.service = service
        self.omics = service.client(pool=2 * max(IN_FLIGHT))
        self.source = source
        self.size = size
        self.parts = part_ranges(size)
        self.repeats = repeats
        self.rows: list[Row] = []
        self.fd = os.open(source, os.O_RDONLY)
        self.store_id = str(self.omics.create_sequence_store(name="throughput")["id"])
        self.read_set_id = ""

    def close(self) -> None:
        os.close(self.fd)

    def add(self, operation: str, in_flight: int, seconds: list[float]) -> None:
        row = Row(operation, in_flight, self.size, seconds)
        self.rows.append(row)
        print("  " + " | ".join(row.cells()), flush=True)

    # uploads

    def new_upload(self) -> str:
        upload = self.omics.create_multipart_read_set_upload(
            sequenceStoreId=self.store_id,
            sourceFileType="FASTQ",
            name="throughput",
            subjectId="subject-1",
            sampleId="sample-1",
        )
        return str(upload["uploadId"])

    def upload_boto3(self, in_flight: int) -> tuple[float, str, dict[int, str]]:
        """Uploads every part into a new upload; returns (seconds, uploadId, checksums)."""
        upload_id = self.new_upload()
        checksums: dict[int, str] = {}

        def work(number: int, offset: int, length: int) -> int:
            data = read_part(self.fd, offset, length)
            reply = self.omics.upload_read_set_part(
                sequenceStoreId=self.store_id,
                uploadId=upload_id,
                partSource="SOURCE1",
                partNumber=number,
                payload=data,
            )
            checksums[number] = reply["checksum"]
            return len(data)

        return run_parts(self.parts, in_flight, work), upload_id, checksums

    def abort(self, upload_id: str) -> None:
        self.omics.abort_multipart_read_set_upload(sequenceStoreId=self.store_id, uploadId=upload_id)

    def upload_raw(self, in_flight: int) -> float:
        upload_id = self.new_upload()
        path = f"/sequencestore/{self.store_id}/upload/{upload_id}/part"
        with per_thread_connections(self.service.host, self.service.port) as connection:

            def work(number: int, offset: int, length: int) -> int:
                data = read_part(self.fd, offset, length)
                conn = connection()
                conn.request(
                    "PUT",
                    f"{path}?partSource=SOURCE1&partNumber={number}",
                    body=data,
                    headers={"Content-Type": "application/octet-stream"},
                )
                response = conn.getresponse()
                body = response.read()
                if response.status != 200 or "checksum" not in json.loads(body):
                    raise RuntimeError(f"raw PUT part {number}: {response.status} {body[:200]!r}")
                return len(data)

            seconds = run_parts(self.parts, in_flight, work)
        self.abort(upload_id)
        return seconds

    def complete(self, upload_id: str, checksums: dict[int, str]) -> None:
        parts = [
            {"partNumber": n, "partSource": "SOURCE1", "checksum": checksums[n]} for n, _, _ in self.parts
        ]
        start = time.perf_counter()
        done = self.omics.complete_multipart_read_set_upload(
            sequenceStoreId=self.store_id, uploadId=upload_id, parts=parts
        )
        completed = time.perf_counter()
        self.service.drain()
        drained = time.perf_counter()
        self.read_set_id = str(done["readSetId"])
        meta = self.omics.get_read_set_metadata(sequenceStoreId=self.store_id, id=self.read_set_id)
        if meta["status"] != "ACTIVE":
            raise RuntimeError(
                f"read set {self.read_set_id} is {meta['status']}: {meta.get('statusMessage')}"
            )
        info = meta["files"]["source1"]
        expected = {"totalParts": len(self.parts), "partSize": PART_SIZE, "contentLength": self.size}
        if {key: info[key] for key in expected} != expected:
            raise RuntimeError(f"unexpected source1 file info {info}, wanted {expected}")
        self.add("CompleteMultipartReadSetUpload (join parts)", 1, [completed - start])
        self.add("processing until ACTIVE (drain)", 1, [drained - completed])

    # downloads

    def download_boto3(self, in_flight: int) -> float:
        def work(number: int, offset: int, length: int) -> int:
            reply = self.omics.get_read_set(
                sequenceStoreId=self.store_id, id=self.read_set_id, file="SOURCE1", partNumber=number
            )
            got = 0
            for chunk in reply["payload"].iter_chunks(READ_CHUNK):
                got += len(chunk)
            declared = int(reply["ResponseMetadata"]["HTTPHeaders"]["content-length"])
            if declared != got:
                raise RuntimeError(f"GetReadSet part {number}: read {got} bytes, Content-Length {declared}")
            return got

        return run_parts(self.parts, in_flight, work)

    def download_raw(self, in_flight: int) -> float:
        path = f"/sequencestore/{self.store_id}/readset/{self.read_set_id}"
        with per_thread_connections(self.service.host, self.service.port) as connection:
            buffers: dict[int, memoryview] = {}

            def work(number: int, offset: int, length: int) -> int:
                buffer = buffers.setdefault(threading.get_ident(), memoryview(bytearray(READ_CHUNK)))
                conn = connection()
                conn.request("GET", f"{path}?partNumber={number}&file=SOURCE1")
                response = conn.getresponse()
                if response.status != 200:
                    raise RuntimeError(f"raw GET part {number}: {response.status} {response.read()[:200]!r}")
                got = 0
                while n := response.readinto(buffer):
                    got += n
                declared = int(response.getheader("content-length") or -1)
                if declared != got:
                    raise RuntimeError(f"raw GET part {number}: read {got} bytes, Content-Length {declared}")
                return got

            return run_parts(self.parts, in_flight, work)

    def page_cache_read(self) -> float:
        return run_parts(self.parts, 1, lambda _, offset, length: len(read_part(self.fd, offset, length)))

    def repeat(self, operation: str, in_flight: int, run: Callable[[], float]) -> None:
        self.add(operation, in_flight, [run() for _ in range(self.repeats)])

    def run(self) -> None:
        self.repeat("local file read, 100 MiB parts (page cache)", 1, self.page_cache_read)
        for in_flight in IN_FLIGHT:
            self.repeat("UploadReadSetPart, http.client", in_flight, partial(self.upload_raw, in_flight))
        kept: tuple[str, dict[int, str]] | None = None
        for in_flight in IN_FLIGHT:
            seconds = []
            for _ in range(self.repeats):
                if kept is not None:
                    self.abort(kept[0])
                elapsed, upload_id, checksums = self.upload_boto3(in_flight)
                seconds.append(elapsed)
                kept = upload_id, checksums
            self.add("UploadReadSetPart, boto3", in_flight, seconds)
        assert kept is not None
        self.complete(*kept)
        for in_flight in IN_FLIGHT:
            self.repeat("GetReadSet, http.client", in_flight, partial(self.download_raw, in_flight))
        for in_flight in IN_FLIGHT:
            self.repeat("GetReadSet, boto3", in_flight, partial(self.download_boto3, in_flight))


def report(rows: list[Row], size: int, generate_seconds: float, total_seconds: float) -> str:
    parts = part_ranges(size)
    return "\n".join(
        [
            "# Local service throughput",
            "",
            f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
            f"- host: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"boto3 {boto3.__version__}, botocore {botocore.__version__}",
            f"- read set: FASTQ.gz of {size} bytes ({size / MIB:.1f} MiB), {len(parts)} parts of partSize "
            f"{PART_SIZE} (last {parts[-1][2]} bytes); generated in {generate_seconds:.1f} s",
            "- service: `omicsfs serve --part-size 104857600 --processing-delay 0 --log-level WARNING`",
            "- every row moves the whole file once per run; MiB = 2**20 bytes; see the script's docstring "
            "for what each row times",
            f"- total benchmark runtime: {total_seconds:.1f} s",
            "",
            markdown_table(rows),
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-mib", type=int, default=640, help="read set size in MiB (default 640)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration (default 3)")
    args = parser.parse_args(argv)
    if args.size_mib <= 0 or args.repeats <= 0:
        parser.error("--size-mib and --repeats must be positive")

    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="omicsfs-throughput-"))
    service: Service | None = None
    bench: Benchmark | None = None
    try:
        source = workdir / "reads.fastq.gz"
        print(f"generating {args.size_mib} MiB of FASTQ.gz in {workdir} ...", flush=True)
        t0 = time.perf_counter()
        size = write_fastq_gz(source, args.size_mib * MIB)
        generate_seconds = time.perf_counter() - t0
        print(f"  {size} bytes in {generate_seconds:.1f} s", flush=True)

        service = Service(workdir / "service", PART_SIZE)
        print(f"service at {service.url}; " + " | ".join(HEADER), flush=True)
        bench = Benchmark(service, source, size, args.repeats)
        bench.run()

        text = report(bench.rows, size, generate_seconds, time.perf_counter() - started)
        print()
        print(text)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)
        print(f"written to {RESULTS.relative_to(REPO_ROOT)}")
    finally:
        if bench is not None:
            bench.close()
        if service is not None:
            service.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
