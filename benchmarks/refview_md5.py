"""What the by-md5 view's MD5 scan costs: a generated FASTA through a real mount, extrapolated.

Run from the repository root, as root or a user who may mount FUSE::

    .venv/bin/python benchmarks/refview_md5.py [--size-mib 300] [--contigs 24]

A FASTA of ``--size-mib`` MiB of bases (``--contigs`` chromosomes of decreasing length, 60
columns, seeded random ACGT with soft-masked stretches) is indexed with ``samtools faidx`` and
imported through a reference import job into ``omicsfs serve`` with the real part size (100 MiB).
A fresh mount without ``--cache-dir`` then lists ``reference-stores/by-md5/`` (the first lookup:
it scans the reference), timed with the wall clock; the daemon's own log line gives the scan's
bytes and seconds, /proc the daemon's and the service's CPU seconds (all threads) over it, which
stay meaningful when other work shares the CPUs, and the service's request counts (reset just
before) the calls. Then the
largest contig's by-md5 file is read with ``dd bs=1M``, against ``dd`` of the FASTA itself through
the same mount: both from the block cache (1 GiB) the scan filled, so this is the view's own cost
per byte (the kernel's page cache is cold for both). Reported, with the extrapolation to a
3.1 GB genome (GRCh38: 3.1e9 bases, 3.15 GB of FASTA at 60 columns).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from harness import MIB, Mount, Service, log

ROLE = "arn:aws:iam::123456789012:role/omics"
GRCH38_BASES = 3.1e9
PART = 100 * MIB


def make_fasta(path: Path, size: int, contigs: int, seed: int) -> dict[str, int]:
    """``contigs`` sequences summing to ``size`` bases, each half again as long as the next."""
    weights = [1.5**-i for i in range(contigs)]
    lengths = [int(size * w / sum(weights)) for w in weights]
    table = bytes(b"ACGTACGTACGTacgt"[i % 16] for i in range(256))
    rng = __import__("random").Random(seed)
    with open(path, "wb") as out:
        for index, length in enumerate(lengths):
            out.write(f">chr{index + 1}\n".encode())
            done = 0
            while done < length:
                block = min(length - done, 60 * 100_000)
                sequence = rng.randbytes(block).translate(table)
                out.write(b"\n".join(sequence[i : i + 60] for i in range(0, block, 60)) + b"\n")
                done += block
    subprocess.run(["samtools", "faidx", str(path)], check=True)
    return {f"chr{i + 1}": n for i, n in enumerate(lengths)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dd(path: Path) -> tuple[int, float]:
    started = time.monotonic()
    result = subprocess.run(["dd", f"if={path}", "of=/dev/null", "bs=1M"], check=True, capture_output=True,
                            text=True)  # fmt: skip
    elapsed = time.monotonic() - started
    copied = re.search(r"^(\d+) bytes", result.stderr, re.MULTILINE)
    return int(copied.group(1)) if copied else 0, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=300)
    parser.add_argument("--contigs", type=int, default=24)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="omicsfs-refview-"))
    service = Service(work / "service", PART)
    mount = None
    try:
        fasta = work / "genome.fa"
        log(f"writing a {args.size_mib} MiB FASTA ({args.contigs} contigs) ...")
        lengths = make_fasta(fasta, args.size_mib * MIB, args.contigs, seed=1)
        omics = service.client()
        store = omics.create_reference_store(name="references")["id"]
        target = service.s3_root / "bucket" / "genome.fa"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(fasta, target)
        source = {"sourceFile": "s3://bucket/genome.fa", "name": "genome"}
        omics.start_reference_import_job(referenceStoreId=store, roleArn=ROLE, sources=[source])
        service.drain()
        fasta_bytes = fasta.stat().st_size
        mount = Mount(work / "mnt", service.url, "--cache-size", "1G")
        service.reset_stats()
        daemon_cpu, service_cpu = cpu_seconds(mount.pid), cpu_seconds(service.child.process.pid)
        started = time.monotonic()
        prefixes = os.listdir(mount.path / "reference-stores" / "by-md5")
        first_lookup = time.monotonic() - started
        daemon_cpu = cpu_seconds(mount.pid) - daemon_cpu
        service_cpu = cpu_seconds(service.child.process.pid) - service_cpu
        requests = service.requests()
        scan = next(line for line in mount.lines if "contig MD5s of reference" in line)
        scanned, seconds = re.search(r": (\d+) bytes in ([\d.]+) s", scan).groups()  # type: ignore[union-attr]
        rate = int(scanned) / float(seconds)
        log(f"first listing of by-md5: {first_lookup:.1f} s wall, {len(prefixes)} prefixes; "
            f"requests {requests}")  # fmt: skip
        per_cpu = int(scanned) / MIB / daemon_cpu
        log(f"scan (daemon's log): {int(scanned) / MIB:.0f} MiB in {float(seconds):.1f} s = "
            f"{rate / MIB:.0f} MiB/s; daemon CPU {daemon_cpu:.1f} s ({per_cpu:.0f} MiB per CPU-second), "
            f"service CPU {service_cpu:.1f} s; load {os.getloadavg()[0]:.1f}")  # fmt: skip
        largest = max(lengths, key=lambda name: lengths[name])
        path = next(p for p in (mount.path / "reference-stores" / "by-md5").rglob("*") if p.is_file()
                    and p.stat().st_size == lengths[largest])  # fmt: skip
        service.reset_stats()
        served, served_s = dd(path)
        raw, raw_s = dd(mount.path / "reference-stores" / "references" / "genome.fasta")
        log(f"dd of {largest}'s by-md5 file after the scan: {served / MIB:.0f} MiB in {served_s:.2f} s = "
            f"{served / MIB / served_s:.0f} MiB/s; of the FASTA: {raw / MIB:.0f} MiB in {raw_s:.2f} s = "
            f"{raw / MIB / raw_s:.0f} MiB/s (block cache; requests {service.requests()})")  # fmt: skip
        grch38_fasta = GRCH38_BASES * 61 / 60
        log(f"extrapolated to GRCh38 ({grch38_fasta / 1e9:.2f} GB of FASTA): scan "
            f"{grch38_fasta / rate:.0f} s at {rate / MIB:.0f} MiB/s, "
            f"{grch38_fasta * daemon_cpu / int(scanned):.0f} daemon CPU-seconds; GetReference calls "
            f"{math.ceil(grch38_fasta / PART)} for the FASTA + 1 for the .fai, once per reference "
            f"(FASTA here: {fasta_bytes} bytes)")  # fmt: skip
    finally:
        if mount is not None:
            mount.stop()
        service.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
