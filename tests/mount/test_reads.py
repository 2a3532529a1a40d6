"""Reads through a real mount are byte-exact and real tools work on the mounted files."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from omicsfs.sample.data import SampleFiles
from omicsfs.sample.load import LoadedSample
from tests.mount.expected import READ_SET_FILES, REFERENCE_FILES, read_set_bytes, reference_bytes


def run(*args: str | Path) -> str:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True).stdout


@pytest.mark.parametrize("name", sorted(READ_SET_FILES))
def test_every_read_set_file_is_byte_exact(
    store_dir: Path, omics: Any, loaded: LoadedSample, name: str
) -> None:
    expected = read_set_bytes(omics, loaded, name)
    path = store_dir / name
    assert path.stat().st_size == len(expected)
    digest = run("md5sum", path).split()[0]
    assert digest == hashlib.md5(expected).hexdigest()


@pytest.mark.parametrize("name", sorted(REFERENCE_FILES))
def test_reference_files_are_byte_exact(
    reference_dir: Path, omics: Any, loaded: LoadedSample, name: str
) -> None:
    expected = reference_bytes(omics, loaded, name)
    assert (reference_dir / name).read_bytes() == expected


def test_stored_files_span_many_parts(omics: Any, loaded: LoadedSample) -> None:
    """The premise of the boundary tests below: 64 KiB parts and a short last part."""
    meta = omics.get_read_set_metadata(sequenceStoreId=loaded.sequence_store_id, id=loaded.read_sets["bam"])
    source = meta["files"]["source1"]
    assert source["partSize"] == 65536
    assert source["totalParts"] >= 5
    assert source["contentLength"] % source["partSize"] != 0


def test_reads_across_part_boundaries_and_the_short_last_part(
    store_dir: Path, omics: Any, loaded: LoadedSample
) -> None:
    expected = read_set_bytes(omics, loaded, "NA12878-aligned.bam")
    part = 65536
    with open(store_dir / "NA12878-aligned.bam", "rb", buffering=0) as handle:
        fd = handle.fileno()
        for boundary in range(part, len(expected), part):
            for before, after in ((1, 1), (100, 5000), (4096, 4096), (part - 1, part + 1)):
                start = max(0, boundary - before)
                got = os.pread(fd, before + after, start)
                assert got == expected[start : start + before + after], (boundary, before, after)
        tail_start = (len(expected) // part) * part
        assert os.pread(fd, part, tail_start) == expected[tail_start:]
        assert os.pread(fd, 1 << 20, len(expected) - 10) == expected[-10:]
        assert os.pread(fd, 100, len(expected)) == b""
        assert os.pread(fd, 100, len(expected) + 12345) == b""


def test_random_offsets_and_lengths(store_dir: Path, omics: Any, loaded: LoadedSample) -> None:
    rng = random.Random(4)
    for name in ("NA12878-aligned.cram", "NA12878-reads_2.fastq.gz", "NA12878-unaligned.bam"):
        expected = read_set_bytes(omics, loaded, name)
        with open(store_dir / name, "rb", buffering=0) as handle:
            for _ in range(200):
                offset = rng.randrange(0, len(expected))
                length = rng.choice([1, 7, 512, 4096, 65535, 65536, 65537, 200_000])
                assert os.pread(handle.fileno(), length, offset) == expected[offset : offset + length]


def test_sixteen_concurrent_readers(store_dir: Path, omics: Any, loaded: LoadedSample) -> None:
    names = sorted(READ_SET_FILES)
    expected = {name: read_set_bytes(omics, loaded, name) for name in names}

    def reader(index: int) -> bool:
        name = names[index % len(names)]
        rng = random.Random(index)
        with open(store_dir / name, "rb", buffering=0) as handle:
            data = expected[name]
            for _ in range(50):
                offset = rng.randrange(0, len(data))
                size = rng.randrange(1, 150_000)
                if os.pread(handle.fileno(), size, offset) != data[offset : offset + size]:
                    return False
        return (store_dir / name).read_bytes() == data

    with ThreadPoolExecutor(16) as pool:
        assert all(pool.map(reader, range(16)))


def test_dd_with_odd_block_sizes(store_dir: Path, omics: Any, loaded: LoadedSample, tmp_path: Path) -> None:
    expected = read_set_bytes(omics, loaded, "NA12878-reads_1.fastq.gz")
    for bs in ("1M", "4097", "65537"):
        out = tmp_path / f"copy.{bs}"
        run("dd", f"if={store_dir / 'NA12878-reads_1.fastq.gz'}", f"of={out}", f"bs={bs}", "status=none")
        assert out.read_bytes() == expected


def test_samtools_on_the_mounted_bam_matches_the_local_file(store_dir: Path, sample: SampleFiles) -> None:
    bam = store_dir / "NA12878-aligned.bam"
    # The stored BAM gained an @CO provenance line in its header, so compare records, not headers.
    assert run("samtools", "view", bam) == run("samtools", "view", sample.bam)
    assert run("samtools", "view", "-c", bam) == run("samtools", "view", "-c", sample.bam)
    assert run("samtools", "idxstats", bam) == run("samtools", "idxstats", sample.bam)
    for region in ("chr1:1000-2000", "chr1:20000-45000", "chr2:1-30000", "chr2:29000-29100"):
        mounted = run("samtools", "view", bam, region)
        assert mounted == run("samtools", "view", sample.bam, region)
        assert mounted.strip(), region
    assert "@CO" in run("samtools", "view", "-H", bam)


def test_samtools_on_the_mounted_cram_uses_the_mounted_reference(
    store_dir: Path, reference_dir: Path, sample: SampleFiles
) -> None:
    cram = store_dir / "NA12878-aligned.cram"
    reference = reference_dir / "demo-genome.fasta"
    local = run("samtools", "view", "-T", sample.reference, sample.cram, "chr1:5000-15000")
    assert local.strip()
    assert run("samtools", "view", "-T", reference, cram, "chr1:5000-15000") == local
    assert run("samtools", "view", "-c", "-T", reference, cram) == run("samtools", "view", "-c", sample.bam)
    assert run("samtools", "idxstats", cram) == run("samtools", "idxstats", sample.cram)


def test_samtools_faidx_on_the_mounted_reference(reference_dir: Path, sample: SampleFiles) -> None:
    reference = reference_dir / "demo-genome.fasta"
    for region in ("chr1:1-100", "chr2:29901-30000", "chr1:12345-23456"):
        assert run("samtools", "faidx", reference, region) == run(
            "samtools", "faidx", sample.reference, region
        )


def test_fastq_files_are_valid_gzip_with_the_reads(store_dir: Path, sample: SampleFiles) -> None:
    for mate, local in (("1", sample.fastq1), ("2", sample.fastq2)):
        path = store_dir / f"NA12878-reads_{mate}.fastq.gz"
        subprocess.run(["gzip", "-t", str(path)], check=True)
        assert run("sh", "-c", f"zcat '{path}' | md5sum") == run("sh", "-c", f"zcat '{local}' | md5sum")


def test_unaligned_bam_reads_match(store_dir: Path, sample: SampleFiles) -> None:
    assert run("samtools", "view", store_dir / "NA12878-unaligned.bam") == run(
        "samtools", "view", sample.ubam
    )
