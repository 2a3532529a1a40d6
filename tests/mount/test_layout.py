"""The folder tree, names, symlink views, job files, attributes and xattrs (README.md, "Layout";
SEMANTICS.md)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pysam

from omicsfs.daemon.mounttable import mounts
from omicsfs.sample.data import SampleFiles
from omicsfs.sample.load import LoadedSample
from tests.mount.expected import READ_SET_FILES
from tests.mounting import Mounted


def test_top_level_and_store_folders(mnt: Mounted, loaded: LoadedSample) -> None:
    assert sorted(os.listdir(mnt.path)) == [".omicsfs", "reference-stores", "sequence-stores"]
    assert sorted(os.listdir(mnt.path / "sequence-stores")) == ["by-id", "demo-cohort"]
    assert sorted(os.listdir(mnt.path / "reference-stores")) == ["by-id", "by-md5", "references"]
    link = mnt.path / "sequence-stores" / "by-id" / loaded.sequence_store_id
    assert os.readlink(link) == "../demo-cohort"
    assert os.readlink(mnt.path / "reference-stores" / "by-id" / loaded.reference_store_id) == "../references"


def test_store_folder_lists_every_file_type_with_indexes(store_dir: Path) -> None:
    assert sorted(os.listdir(store_dir)) == sorted(
        [*READ_SET_FILES, "by-id", "by-sample", "by-subject", ".jobs"]
    )


def test_reference_folder(reference_dir: Path, loaded: LoadedSample) -> None:
    assert sorted(os.listdir(reference_dir)) == [
        ".jobs",
        "by-id",
        "demo-genome.fasta",
        "demo-genome.fasta.fai",
    ]
    by_id = reference_dir / "by-id"
    assert sorted(os.listdir(by_id)) == [f"{loaded.reference_id}.fasta", f"{loaded.reference_id}.fasta.fai"]
    assert os.readlink(by_id / f"{loaded.reference_id}.fasta") == "../demo-genome.fasta"


def test_by_id_links_point_at_the_named_files(store_dir: Path, loaded: LoadedSample) -> None:
    ids = loaded.read_sets
    expected = {
        f"{ids['bam']}.bam": "NA12878-aligned.bam",
        f"{ids['bam']}.bam.bai": "NA12878-aligned.bam.bai",
        f"{ids['cram']}.cram": "NA12878-aligned.cram",
        f"{ids['cram']}.cram.crai": "NA12878-aligned.cram.crai",
        f"{ids['fastq']}_1.fastq.gz": "NA12878-reads_1.fastq.gz",
        f"{ids['fastq']}_2.fastq.gz": "NA12878-reads_2.fastq.gz",
        f"{ids['ubam']}.bam": "NA12878-unaligned.bam",
    }
    by_id = store_dir / "by-id"
    assert sorted(os.listdir(by_id)) == sorted(expected)
    for link, target in expected.items():
        assert os.readlink(by_id / link) == f"../{target}"
        assert (by_id / link).read_bytes() == (store_dir / target).read_bytes()


def test_sample_and_subject_views(store_dir: Path) -> None:
    assert os.listdir(store_dir / "by-sample") == ["NA12878"]
    assert os.listdir(store_dir / "by-subject") == ["subject-1"]
    for view in ("by-sample/NA12878", "by-subject/subject-1"):
        folder = store_dir / view
        assert sorted(os.listdir(folder)) == sorted(READ_SET_FILES)
        assert os.readlink(folder / "NA12878-aligned.bam") == "../../NA12878-aligned.bam"
        # htslib finds the index through the link's own folder: samtools works on the view too.
        out = subprocess.run(
            ["samtools", "view", "-c", str(folder / "NA12878-aligned.bam"), "chr1:1-20000"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        assert int(out) > 0


def test_job_files_describe_the_import_jobs(
    store_dir: Path, reference_dir: Path, omics: Any, loaded: LoadedSample
) -> None:
    imports = omics.list_read_set_import_jobs(sequenceStoreId=loaded.sequence_store_id)["importJobs"]
    assert sorted(os.listdir(store_dir / ".jobs")) == ["activation", "export", "import"]
    assert sorted(os.listdir(store_dir / ".jobs" / "import")) == sorted(
        f"{job['id']}.json" for job in imports
    )
    document = json.loads((store_dir / ".jobs" / "import" / f"{imports[0]['id']}.json").read_text())
    assert document["status"] == "COMPLETED"
    assert document["creationTime"]
    assert document["completionTime"]
    assert {source["readSetId"] for source in document["sources"]} == {
        loaded.read_sets["bam"],
        loaded.read_sets["cram"],
    }
    assert all(source["status"] == "FINISHED" for source in document["sources"])
    (ref_job,) = os.listdir(reference_dir / ".jobs" / "import")
    reference_job = json.loads((reference_dir / ".jobs" / "import" / ref_job).read_text())
    assert reference_job["sources"][0]["referenceId"] == loaded.reference_id
    assert os.listdir(store_dir / ".jobs" / "export") == []


def test_attributes(store_dir: Path, omics: Any, loaded: LoadedSample) -> None:
    meta = omics.get_read_set_metadata(sequenceStoreId=loaded.sequence_store_id, id=loaded.read_sets["bam"])
    info = os.stat(store_dir / "NA12878-aligned.bam")
    assert stat.S_IMODE(info.st_mode) == 0o444
    assert stat.S_ISREG(info.st_mode)
    assert info.st_size == meta["files"]["source1"]["contentLength"]
    assert info.st_blocks == -(-info.st_size // 512)
    created_ns = round(meta["creationTime"].timestamp() * 1e6) * 1000  # milliseconds on the wire
    assert info.st_mtime_ns == created_ns == info.st_ctime_ns
    assert (info.st_uid, info.st_gid) == (os.getuid(), os.getgid())
    folder = os.stat(store_dir)
    assert stat.S_IMODE(folder.st_mode) == 0o555
    assert stat.S_ISDIR(folder.st_mode)
    assert os.stat(store_dir / "NA12878-aligned.bam").st_ino == info.st_ino  # stable inode numbers


def test_xattrs(store_dir: Path, omics: Any, loaded: LoadedSample) -> None:
    meta = omics.get_read_set_metadata(sequenceStoreId=loaded.sequence_store_id, id=loaded.read_sets["bam"])
    path = store_dir / "NA12878-aligned.bam"
    names = set(os.listxattr(path))
    for name in ("id", "arn", "status", "name", "sampleId", "subjectId", "referenceArn", "fileType", "etag",
                 "creationTime", "totalReadCount"):  # fmt: skip
        assert f"user.omics.{name}" in names
    assert os.getxattr(path, "user.omics.id").decode() == loaded.read_sets["bam"]
    assert os.getxattr(path, "user.omics.status") == b"ACTIVE"
    assert os.getxattr(path, "user.omics.referenceArn").decode() == loaded.reference_arn
    assert os.getxattr(path, "user.omics.etag").decode() == meta["etag"]["source1"]
    assert (
        int(os.getxattr(path, "user.omics.totalReadCount")) == meta["sequenceInformation"]["totalReadCount"]
    )
    created = dt.datetime.fromisoformat(
        os.getxattr(path, "user.omics.creationTime").decode().replace("Z", "+00:00")
    )
    assert abs(created.timestamp() - meta["creationTime"].timestamp()) < 0.001
    out = subprocess.run(
        ["getfattr", "-d", "-m", "user.omics", str(path)], check=True, capture_output=True, text=True
    )
    assert 'user.omics.sampleId="NA12878"' in out.stdout
    mate2 = store_dir / "NA12878-reads_2.fastq.gz"
    assert os.getxattr(mate2, "user.omics.file") == b"SOURCE2"


def test_uid_gid_options(tmp_path: Path, loaded_service: Any, loaded: LoadedSample) -> None:
    mounted = Mounted(tmp_path / "mnt", loaded_service.url, "--uid", "1234", "--gid", "5678")
    try:
        info = os.stat(mounted.path / "sequence-stores" / "demo-cohort" / "NA12878-aligned.bam")
        assert (info.st_uid, info.st_gid) == (1234, 5678)
    finally:
        assert mounted.stop() == 0


def test_by_md5_holds_each_contig_under_its_md5(mnt: Mounted, sample: SampleFiles) -> None:
    """reference-stores/by-md5/<2>/<2>/<28>: the row of SEMANTICS.md's layout table (the view's
    own tests are in tests/references/)."""
    root = mnt.path / "reference-stores" / "by-md5"
    assert stat.S_IMODE(root.stat().st_mode) == 0o555
    with pysam.FastaFile(str(sample.reference)) as fasta:
        sequences = [fasta.fetch(name) for name in fasta.references]
    contigs = {hashlib.md5(seq.upper().encode()).hexdigest(): len(seq) for seq in sequences}
    found = {}
    for first in os.listdir(root):
        for second in os.listdir(root / first):
            for rest in os.listdir(root / first / second):
                found[first + second + rest] = (root / first / second / rest).stat()
    assert set(found) == set(contigs)
    for md5, info in found.items():
        assert (info.st_size, stat.S_IMODE(info.st_mode)) == (contigs[md5], 0o444)


def test_the_daemon_raises_the_kernel_readahead_of_its_mount(mnt: Mounted) -> None:
    """1 MiB of kernel readahead turns htslib's 32 KiB reads into large FUSE reads; the daemon
    sets it from the mount table (docs/architecture.md, tenet 6) once the kernel's INIT is
    answered, which any request waits for."""
    os.listdir(mnt.path)
    (entry,) = [e for e in mounts() if e.point == str(mnt.path)]
    assert Path(f"/sys/class/bdi/{entry.device}/read_ahead_kb").read_text().strip() == "1024"
