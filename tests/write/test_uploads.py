"""cp, dd and mkdir on a --read-write mount make read sets; samtools reads them back."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from omicsfs.cli.stats import read_stats, render
from omicsfs.sample.data import SampleFiles
from omicsfs.sample.load import LoadedSample
from tests.mounting import Mounted, md5
from tests.write.conftest import open_uploads, read_sets_named, wait_active


def samtools(*args: str) -> str:
    return subprocess.run(["samtools", *args], check=True, capture_output=True, text=True).stdout


def header_sample(bam: Path) -> str:
    for line in samtools("view", "-H", str(bam)).splitlines():
        if line.startswith("@RG"):
            return dict(f.split(":", 1) for f in line.split("\t")[1:])["SM"]
    raise AssertionError("the sample BAM has no @RG")


def test_cp_bam_makes_an_aligned_read_set_samtools_can_query(
    cohort: Path, sample: SampleFiles, omics: Any, write_loaded: LoadedSample
) -> None:
    subprocess.run(["cp", str(sample.bam), str(cohort / "cp-bam.bam")], check=True)
    meta = wait_active(omics, write_loaded.sequence_store_id, "cp-bam")
    assert meta["fileType"] == "BAM"
    assert meta["referenceArn"] == write_loaded.reference_arn  # found by matching @SQ to the .fai
    assert meta["sampleId"] == header_sample(sample.bam) == meta["subjectId"]
    mounted = cohort / "cp-bam.bam"
    assert (cohort / "cp-bam.bam.bai").exists()
    assert samtools("view", "-c", str(mounted)) == samtools("view", "-c", str(sample.bam))
    region = "chr1:1000-5000"
    assert samtools("view", str(mounted), region) == samtools("view", str(sample.bam), region)
    assert open_uploads(omics, write_loaded.sequence_store_id) == []


def test_cp_cram_links_the_reference_and_reads_back_with_the_mounted_fasta(
    rw: Mounted, cohort: Path, sample: SampleFiles, omics: Any, write_loaded: LoadedSample
) -> None:
    subprocess.run(["cp", str(sample.cram), str(cohort / "cp-cram.cram")], check=True)
    meta = wait_active(omics, write_loaded.sequence_store_id, "cp-cram")
    assert meta["fileType"] == "CRAM"
    assert meta["referenceArn"] == write_loaded.reference_arn
    fasta = rw.path / "reference-stores" / "references" / "demo-genome.fasta"
    through_mount = samtools("view", "-T", str(fasta), str(cohort / "cp-cram.cram"))
    assert through_mount == samtools("view", "-T", str(sample.reference), str(sample.cram))


def test_bam_without_sq_lines_becomes_ubam_without_a_reference(
    cohort: Path, sample: SampleFiles, omics: Any, write_loaded: LoadedSample
) -> None:
    shutil.copyfile(sample.ubam, cohort / "cp-ubam.bam")
    meta = wait_active(omics, write_loaded.sequence_store_id, "cp-ubam")
    assert meta["fileType"] == "UBAM"
    assert "referenceArn" not in meta
    assert samtools("view", "-c", str(cohort / "cp-ubam.bam")) == samtools("view", "-c", str(sample.ubam))


def test_fastq_gz_is_stored_byte_for_byte(
    cohort: Path, sample: SampleFiles, omics: Any, write_loaded: LoadedSample
) -> None:
    shutil.copyfile(sample.fastq1, cohort / "single.fq.gz")
    meta = wait_active(omics, write_loaded.sequence_store_id, "single")
    assert meta["fileType"] == "FASTQ"
    assert meta["sampleId"] == "single" == meta["subjectId"]  # no header, folder or option: the name
    assert md5(cohort / "single.fastq.gz") == md5(sample.fastq1)


def test_plain_fastq_is_gzipped_on_the_fly(
    cohort: Path, sample: SampleFiles, omics: Any, write_loaded: LoadedSample, tmp_path: Path
) -> None:
    text = gzip.decompress(sample.fastq1.read_bytes())
    plain = tmp_path / "plain.fastq"
    plain.write_bytes(text)
    subprocess.run(["cp", str(plain), str(cohort / "plain.fastq")], check=True)
    wait_active(omics, write_loaded.sequence_store_id, "plain")
    stored = cohort / "plain.fastq.gz"  # the store keeps FASTQ gzip-only, so the name says .gz
    assert not (cohort / "plain.fastq").exists()
    assert gzip.decompress(stored.read_bytes()) == text


def test_paired_mates_in_one_cp_become_one_read_set(
    cohort: Path, sample: SampleFiles, omics: Any, write_loaded: LoadedSample, tmp_path: Path
) -> None:
    r1, r2 = tmp_path / "pair_R1.fastq.gz", tmp_path / "pair_R2.fastq.gz"
    shutil.copyfile(sample.fastq1, r1)
    shutil.copyfile(sample.fastq2, r2)
    subprocess.run(["cp", str(r1), str(r2), str(cohort)], check=True)
    meta = wait_active(omics, write_loaded.sequence_store_id, "pair")
    assert set(meta["files"]) == {"source1", "source2"}
    assert len(read_sets_named(omics, write_loaded.sequence_store_id, "pair")) == 1
    assert md5(cohort / "pair_1.fastq.gz") == md5(sample.fastq1)
    assert md5(cohort / "pair_2.fastq.gz") == md5(sample.fastq2)


@pytest.mark.parametrize("block", ["12345", "1", "1M"])
def test_dd_with_odd_block_sizes_is_byte_exact(
    block: str, cohort: Path, sample: SampleFiles, omics: Any, write_loaded: LoadedSample, tmp_path: Path
) -> None:
    name = f"dd-{block}"
    source = sample.fastq2
    if block == "1":  # one byte per write: keep it small
        source = tmp_path / "small.fastq.gz"
        source.write_bytes(gzip.compress(b"@r1\nACGT\n+\nIIII\n" * 200))
    subprocess.run(
        ["dd", f"if={source}", f"of={cohort / (name + '.fastq.gz')}", f"bs={block}", "status=none"],
        check=True,
    )
    wait_active(omics, write_loaded.sequence_store_id, name)
    assert md5(cohort / f"{name}.fastq.gz") == md5(source)


def test_group_folders_set_sample_and_subject(
    cohort: Path, sample: SampleFiles, omics: Any, write_loaded: LoadedSample
) -> None:
    sample_folder = cohort / "by-sample" / "S-new"
    sample_folder.mkdir()
    assert sample_folder.is_dir()
    assert os.listdir(sample_folder) == []
    shutil.copyfile(sample.fastq1, sample_folder / "in-sample.fastq.gz")
    meta = wait_active(omics, write_loaded.sequence_store_id, "in-sample")
    assert (meta["sampleId"], meta["subjectId"]) == ("S-new", "S-new")

    subject_folder = cohort / "by-subject" / "P-7"
    subject_folder.mkdir()
    shutil.copyfile(sample.fastq1, subject_folder / "in-subject.fastq.gz")
    meta = wait_active(omics, write_loaded.sequence_store_id, "in-subject")
    assert (meta["sampleId"], meta["subjectId"]) == ("in-subject", "P-7")
    assert (cohort / "by-subject" / "P-7" / "in-subject.fastq.gz").is_symlink()


def test_a_header_sample_wins_over_the_folder(
    cohort: Path, sample: SampleFiles, omics: Any, write_loaded: LoadedSample
) -> None:
    folder = cohort / "by-sample" / "folder-sample"
    folder.mkdir()
    shutil.copyfile(sample.bam, folder / "rg-wins.bam")
    meta = wait_active(omics, write_loaded.sequence_store_id, "rg-wins")
    assert meta["sampleId"] == header_sample(sample.bam)


def test_an_empty_file_creates_nothing(cohort: Path, omics: Any, write_loaded: LoadedSample) -> None:
    (cohort / "empty.bam").write_bytes(b"")
    assert "empty.bam" not in os.listdir(cohort)
    assert read_sets_named(omics, write_loaded.sequence_store_id, "empty") == []
    assert open_uploads(omics, write_loaded.sequence_store_id) == []


def test_a_file_being_written_is_listed_with_its_size_and_cannot_be_read(
    rw: Mounted, cohort: Path, sample: SampleFiles, omics: Any, write_loaded: LoadedSample
) -> None:
    data = sample.fastq1.read_bytes()
    target = cohort / "growing.fastq.gz"
    with open(target, "wb", buffering=0) as handle:
        handle.write(data[:100_000])
        assert "growing.fastq.gz" in os.listdir(cohort)
        assert os.stat(target).st_size == 100_000
        # In this process: a child process would close its inherited copy of the descriptor,
        # and that flush completes the upload (SEMANTICS.md "Close and flush").
        progress = render(read_stats(rw.path))  # what omicsfs stats shows: a bar per upload
        assert "growing.fastq.gz [" in progress
        assert "0.1 MiB written" in progress
        with pytest.raises(PermissionError):
            target.read_bytes()
        with pytest.raises(PermissionError):
            open(target, "ab")  # noqa: SIM115 - one writer per file
        handle.write(data[100_000:])
    wait_active(omics, write_loaded.sequence_store_id, "growing")
    assert md5(target) == md5(sample.fastq1)
