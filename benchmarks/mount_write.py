"""Copying a >= 1 GiB file into a --read-write mount against a raw boto3 multipart upload.

Run from the repository root as root (or a user who may mount FUSE)::

    .venv/bin/python benchmarks/mount_write.py [--size-mib 1024] [--repeats 3]

Setup: one ``omicsfs serve`` (``--processing-delay 0``, its own temporary data dir) with one
sequence store, and a FASTQ.gz source file of ``--size-mib`` MiB on local disk (an 8 MiB gzip member
of seeded random 150 bp records, ``omicsfs.sampledata.fastq_gzip_member``, repeated: a valid
multi-member gzip). The file is read once before timing, so both sides read it from the page cache.

Each repeat measures, in this order:
(a) raw: CreateMultipartReadSetUpload, then UploadReadSetPart of 100 MiB parts on 4 threads (each
    thread reads its slice of the file), then Complete; timed from Create to Complete's answer;
(b) mount: a fresh ``omicsfs mount --read-write`` (defaults: 100 MiB parts, 4 in flight), then
    ``cp FILE STORE/NAME.fastq.gz`` timed with a wall clock (cp returns when close() returns,
    which is after Complete). The daemon's peak RSS (VmHWM, /proc/PID/status) is read after cp.
Between steps the service's background processing is drained (admin ``drain``), so one upload's
processing never competes with the next measurement.

Reported: MiB/s of each, mount/raw (target >= 0.8), and VmHWM against the bound
2 x part size x parts in flight + 150 MiB = 950 MiB. Results: a markdown table on stdout and
``benchmarks/results/mount_write.md`` (gitignored). MiB = 2**20 bytes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from omicsfs.localservice.process import ServiceProcess
from omicsfs.sampledata import fastq_gzip_member

MiB = 1 << 20
PART = 100 * MiB
IN_FLIGHT = 4
RESULTS = Path(__file__).resolve().parent / "results"


def client(url: str) -> Any:
    return boto3.client(
        "omics", endpoint_url=url, region_name="us-east-1", aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(inject_host_prefix=False, retries={"total_max_attempts": 1},
                      max_pool_connections=IN_FLIGHT * 2),
    )  # fmt: skip


def make_source(path: Path, size: int) -> int:
    member = fastq_gzip_member(8 * MiB, seed=11)
    written = 0
    with open(path, "wb") as out:
        while written < size:
            out.write(member)
            written += len(member)
    return written


def raw_upload(omics: Any, store_id: str, source: Path, name: str) -> float:
    size = source.stat().st_size
    started = time.perf_counter()
    upload = omics.create_multipart_read_set_upload(
        sequenceStoreId=store_id, sourceFileType="FASTQ", subjectId="bench", sampleId="bench", name=name
    )

    def part(number: int) -> dict[str, Any]:
        with open(source, "rb") as handle:
            handle.seek((number - 1) * PART)
            payload = handle.read(PART)
        reply = omics.upload_read_set_part(
            sequenceStoreId=store_id, uploadId=upload["uploadId"], partSource="SOURCE1",
            partNumber=number, payload=payload,
        )  # fmt: skip
        return {"partNumber": number, "partSource": "SOURCE1", "checksum": reply["checksum"]}

    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        parts = list(pool.map(part, range(1, -(-size // PART) + 1)))
    omics.complete_multipart_read_set_upload(
        sequenceStoreId=store_id, uploadId=upload["uploadId"], parts=parts
    )
    return time.perf_counter() - started


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def mount_upload(url: str, mountpoint: Path, source: Path, name: str) -> tuple[float, float]:
    mountpoint.mkdir(exist_ok=True)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "omicsfs", "mount", str(mountpoint), "--endpoint-url", url,
         "--foreground", "--read-write", "--log-level", "WARNING"],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        store = mountpoint / "sequence-stores" / "bench"
        deadline = time.monotonic() + 60
        while not store.is_dir():  # the mount is up once the store folder is visible
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mount failed: {daemon.stderr.read() if daemon.stderr else ''}")
            time.sleep(0.05)
        started = time.perf_counter()
        subprocess.run(["cp", str(source), str(store / f"{name}.fastq.gz")], check=True)
        seconds = time.perf_counter() - started
        return seconds, peak_rss_mib(daemon.pid)
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="omicsfs-write-bench-"))
    service = ServiceProcess(work / "data", processing_delay=0.0)
    try:
        omics = client(service.url)
        store_id = omics.create_sequence_store(name="bench")["id"]
        source = work / "source.fastq.gz"
        size = make_source(source, args.size_mib * MiB)
        source.read_bytes()  # into the page cache for both sides
        rows = []
        for run in range(1, args.repeats + 1):
            raw = raw_upload(omics, store_id, source, f"raw-{run}")
            service_drain(service.url)
            mounted, rss = mount_upload(service.url, work / "mnt", source, f"mount-{run}")
            service_drain(service.url)
            rows.append((run, size / MiB / raw, size / MiB / mounted, rss))
            _, raw_rate, mount_rate, _ = rows[-1]
            print(f"run {run}: raw {raw_rate:.0f} MiB/s, mount {mount_rate:.0f} MiB/s, VmHWM {rss:.0f} MiB",
                  file=sys.stderr)  # fmt: skip
        bound = 2 * PART * IN_FLIGHT / MiB + 150
        lines = [
            f"# mount_write: {size / MiB:.0f} MiB FASTQ.gz, 100 MiB parts, {IN_FLIGHT} in flight, "
            f"{os.cpu_count()} CPUs",
            "",
            "| run | raw boto3 MiB/s | cp into mount MiB/s | mount/raw | daemon VmHWM MiB (bound) |",
            "|---:|---:|---:|---:|---:|",
        ]
        for run, raw_rate, mount_rate, rss in rows:
            lines.append(f"| {run} | {raw_rate:.0f} | {mount_rate:.0f} | {mount_rate / raw_rate:.2f} | "
                         f"{rss:.0f} ({bound:.0f}) |")  # fmt: skip
        ratios = [m / r for _, r, m, _ in rows]
        lines.append("")
        lines.append(f"median mount/raw {statistics.median(ratios):.2f} (target >= 0.8); "
                     f"max VmHWM {max(r[3] for r in rows):.0f} MiB (bound {bound:.0f})")  # fmt: skip
        text = "\n".join(lines) + "\n"
        print(text)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "mount_write.md").write_text(text)
        return 0
    finally:
        service.stop()
        shutil.rmtree(work, ignore_errors=True)


def service_drain(url: str) -> None:
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{url}/_omicsfs/drain", method="POST"), timeout=600).read()


if __name__ == "__main__":
    sys.exit(main())
