"""Copying a >= 1 GiB file into a --read-write mount against a raw boto3 multipart upload.

Run from the repository root as root (or a user who may mount FUSE)::

    .venv/bin/python benchmarks/mount_write.py [--size-mib 1024] [--repeats 3]

Setup: one ``omicsfs serve`` (``--processing-delay 0``, its own temporary data dir) with one
sequence store, and a FASTQ.gz source file of ``--size-mib`` MiB on local disk (an 8 MiB gzip member
of seeded random 150 bp records, ``omicsfs.sample.data.fastq_gzip_member``, repeated: a valid
multi-member gzip). The file is read once before timing, so both sides read it from the page cache.

Each repeat measures, in this order:
(a) raw: CreateMultipartReadSetUpload, then UploadReadSetPart of 100 MiB parts on 4 threads (each
    thread reads its slice of the file), then Complete; timed from Create to Complete's answer;
(b) mount: a fresh ``omicsfs mount --read-write`` (defaults: 100 MiB parts, 4 in flight; started
    by harness.Mount), the store folder stat-ed, then ``cp FILE STORE/NAME.fastq.gz`` timed with a
    wall clock (cp returns when close() returns,
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
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness import MIB, Mount, Service, write_copies

from omicsfs.sample.data import fastq_gzip_member

PART = 100 * MIB
IN_FLIGHT = 4
RESULTS = Path(__file__).resolve().parent / "results"


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


def mount_upload(service: Service, mountpoint: Path, source: Path, name: str) -> tuple[float, float]:
    """``cp`` into a fresh --read-write mount: (seconds, daemon VmHWM in MiB)."""
    mount = Mount(mountpoint, service.url, "--read-write", metadata_tps=None)
    try:
        target = mount.path / "sequence-stores" / "bench" / f"{name}.fastq.gz"
        target.parent.stat()  # the store listing is not what is measured
        started = time.perf_counter()
        subprocess.run(["cp", str(source), str(target)], check=True)
        seconds = time.perf_counter() - started
        return seconds, mount.status_kib("VmHWM") / 1024
    finally:
        mount.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="omicsfs-write-bench-"))
    service = Service(work / "data", PART)
    try:
        omics = service.client(pool=IN_FLIGHT * 2)
        store_id = omics.create_sequence_store(name="bench")["id"]
        source = work / "source.fastq.gz"
        member = fastq_gzip_member(8 * MIB, seed=11)
        size = write_copies(source, member, -(-args.size_mib * MIB // len(member)))
        source.read_bytes()  # into the page cache for both sides
        rows = []
        for run in range(1, args.repeats + 1):
            raw = raw_upload(omics, store_id, source, f"raw-{run}")
            service.drain()
            mounted, rss = mount_upload(service, work / "mnt", source, f"mount-{run}")
            service.drain()
            rows.append((run, size / MIB / raw, size / MIB / mounted, rss))
            _, raw_rate, mount_rate, _ = rows[-1]
            print(f"run {run}: raw {raw_rate:.0f} MiB/s, mount {mount_rate:.0f} MiB/s, VmHWM {rss:.0f} MiB",
                  file=sys.stderr)  # fmt: skip
        bound = 2 * PART * IN_FLIGHT / MIB + 150
        lines = [
            f"# mount_write: {size / MIB:.0f} MiB FASTQ.gz, 100 MiB parts, {IN_FLIGHT} in flight, "
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


if __name__ == "__main__":
    sys.exit(main())
