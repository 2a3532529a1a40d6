"""Names as the kernel sees them: NAME_MAX, renamed collision members, and walking the tree
through its symlinks (find, du), on a real mount against the local service."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omicsfs.fs.names import NAME_MAX
from omicsfs.sample.data import SampleFiles
from omicsfs.sample.load import load_sample
from tests.localservice import RunningService
from tests.mount.builders import fastq_gz
from tests.mounting import Mounted
from tests.service.helpers import download, upload_file

EMOJI = "\U0001f9ec"  # 4 bytes in UTF-8: 127 of them are 508 bytes


@pytest.fixture
def names_service(tmp_path: Path) -> Iterator[RunningService]:
    running = RunningService(tmp_path / "data")
    yield running
    running.stop()


def test_a_renamed_collision_member_keeps_its_link_count(
    names_service: RunningService, tmp_path: Path
) -> None:
    """``q_1.fastq.gz`` of read set ``q_1`` becomes ``q_1.<id>.fastq.gz`` when a paired read set
    ``q`` appears (its ``q_1.fastq.gz`` mate collides). The kernel was told the old name went
    away; it must not also be told the inode was deleted, or it shows nlink 0 for the attribute
    timeout of ACTIVE files (an hour)."""
    omics = names_service.client()
    store = omics.create_sequence_store(name="links")["id"]
    single = upload_file(omics, store, {"SOURCE1": fastq_gz(5, seed=1)}, "FASTQ", name="q_1")
    names_service.drain()
    mounted = Mounted(tmp_path / "mnt", names_service.url)
    try:
        folder = mounted.path / "sequence-stores" / "links"
        before = os.stat(folder / "q_1.fastq.gz")
        assert before.st_nlink == 1
        paired = upload_file(
            omics, store, {"SOURCE1": fastq_gz(5, seed=2), "SOURCE2": fastq_gz(5, seed=3)}, "FASTQ", name="q"
        )
        names_service.drain()
        renamed = f"q_1.{single}.fastq.gz"
        mounted.process.send_signal(signal.SIGHUP)
        mounted.wait_for_log("SIGHUP: listings will be fetched again")
        # ls -l as a user runs it: the listing that notices the rename, then an lstat per entry.
        listing = subprocess.run(["ls", "-l", str(folder)], capture_output=True, text=True, check=True).stdout
        links = {line.split()[-1]: line.split()[1] for line in listing.splitlines() if ".fastq.gz" in line}
        assert "q_1.fastq.gz" not in links
        assert links == {renamed: "1", f"q.{paired}_1.fastq.gz": "1", f"q.{paired}_2.fastq.gz": "1"}
        after = os.stat(folder / renamed)
        assert after.st_ino == before.st_ino  # the same file under its new name
        assert after.st_nlink == 1
        assert (folder / renamed).read_bytes() == download(omics, store, single)
    finally:
        assert mounted.stop() == 0


def test_names_longer_than_name_max_are_shortened_with_their_id_and_copy_out(
    names_service: RunningService, tmp_path: Path
) -> None:
    omics = names_service.client()
    store = omics.create_sequence_store(name=EMOJI * 127)["id"]
    long_name = EMOJI * 127
    read_set = upload_file(
        omics, store, {"SOURCE1": fastq_gz(5, seed=4), "SOURCE2": fastq_gz(5, seed=5)}, "FASTQ",
        name=long_name, sampleId=EMOJI * 127, subjectId="s" * 127,
    )  # fmt: skip
    names_service.drain()
    mounted = Mounted(tmp_path / "mnt", names_service.url)
    try:
        stores = [name for name in os.listdir(mounted.path / "sequence-stores") if name != "by-id"]
        assert len(stores) == 1
        assert len(os.fsencode(stores[0])) <= NAME_MAX
        assert stores[0].endswith(f".{store}")
        folder = mounted.path / "sequence-stores" / stores[0]
        files = sorted(name for name in os.listdir(folder) if name.endswith(".gz"))
        assert len(files) == 2
        stem = files[0].removesuffix("_1.fastq.gz")
        assert files == [f"{stem}_1.fastq.gz", f"{stem}_2.fastq.gz"]
        assert stem.endswith(f".{read_set}")
        assert stem.startswith(EMOJI * 50)
        for walked, dirs, names in os.walk(mounted.path):
            for name in dirs + names:
                assert len(os.fsencode(name)) <= NAME_MAX, os.path.join(walked, name)
        # cp to a local filesystem works (it failed with ENAMETOOLONG before).
        copy = tmp_path / "copy"
        copy.mkdir()
        subprocess.run(["cp", "-r", str(folder), str(copy)], check=True)
        copied = copy / stores[0] / files[1]
        assert copied.read_bytes() == download(omics, store, read_set, "SOURCE2")
        samples = os.listdir(folder / "by-sample")
        assert len(samples) == 1
        assert len(os.fsencode(samples[0])) <= NAME_MAX
        assert sorted(os.listdir(folder / "by-sample" / samples[0])) == files
        assert os.listdir(folder / "by-subject") == ["s" * 127]  # fits: left as it is
        link = folder / "by-id" / f"{read_set}_1.fastq.gz"
        assert os.readlink(link) == f"../{files[0]}"
        assert link.read_bytes() == (folder / files[0]).read_bytes()
    finally:
        assert mounted.stop() == 0


def _sample_store(service: RunningService, omics: Any) -> tuple[str, dict[str, bytes]]:
    store = omics.create_sequence_store(name="walk")["id"]
    contents = {}
    for index in range(3):
        data = fastq_gz(5, seed=10 + index)
        upload_file(omics, store, {"SOURCE1": data}, "FASTQ", name=f"w{index}", sampleId=f"S{index % 2}")
        contents[f"w{index}.fastq.gz"] = data
    service.drain()
    return store, contents


def test_find_type_f_lists_each_file_once_and_find_l_du_l_do_not_loop(
    names_service: RunningService, tmp_path: Path
) -> None:
    omics = names_service.client()
    _, contents = _sample_store(names_service, omics)
    mounted = Mounted(tmp_path / "mnt", names_service.url)
    try:
        root = str(mounted.path)
        plain = subprocess.run(["find", root, "-name", "*.fastq.gz"], capture_output=True, text=True)
        assert plain.returncode == 0
        # Each file and its three aliases (by-id/, by-sample/, by-subject/), as README says.
        assert len(plain.stdout.split()) == 4 * len(contents)
        files = subprocess.run(
            ["find", root, "-type", "f", "-name", "*.fastq.gz"], capture_output=True, text=True, check=True
        ).stdout.split()
        assert sorted(Path(path).name for path in files) == sorted(contents)
        followed = subprocess.run(
            ["find", "-L", root, "-type", "f", "-name", "*.fastq.gz"], capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert followed.returncode == 0, followed.stderr
        assert "loop" not in followed.stderr
        paths = followed.stdout.split()
        # Through the store's by-id/<store> link too: twice the four paths per file, and no more.
        assert len(paths) == 2 * 4 * len(contents)
        assert len({(os.stat(path).st_dev, os.stat(path).st_ino) for path in paths}) == len(contents)
        whole = subprocess.run(["du", "-L", "-s", "-b", root], capture_output=True, text=True, timeout=120)
        assert whole.returncode == 0, whole.stderr
        assert "loop" not in whole.stderr
        # du counts an inode once however many paths reach it: the store's files once, though
        # by-id/, by-sample/, by-subject/ and sequence-stores/by-id/<store> all lead to them.
        folder = mounted.path / "sequence-stores" / "walk"
        du = subprocess.run(["du", "-L", "-s", "-b", str(folder)], capture_output=True, text=True, check=True)
        assert int(du.stdout.split()[0]) == sum(len(data) for data in contents.values())
    finally:
        assert mounted.stop() == 0


def test_copying_a_store_out_keeps_its_links_and_cp_l_copies_each_file_four_times(
    names_service: RunningService, tmp_path: Path
) -> None:
    omics = names_service.client()
    _, contents = _sample_store(names_service, omics)
    mounted = Mounted(tmp_path / "mnt", names_service.url)
    try:
        folder = mounted.path / "sequence-stores" / "walk"
        out = tmp_path / "out"
        out.mkdir()
        for command in (["cp", "-r", str(folder), str(out / "cp")],
                        ["rsync", "-a", f"{folder}/", str(out / "rsync")],
                        ["cp", "-rL", str(folder), str(out / "cp-L")]):  # fmt: skip
            result = subprocess.run(command, capture_output=True, text=True)
            assert result.returncode == 0, (command, result.stderr)
        for copy in (out / "cp", out / "rsync"):
            files = subprocess.run(["find", str(copy), "-type", "f"], capture_output=True, text=True).stdout
            assert sorted(Path(path).name for path in files.split()) == sorted(contents)
            # The links are relative (../NAME), so they still point at the copied files.
            broken = subprocess.run(["find", str(copy), "-xtype", "l"], capture_output=True, text=True)
            assert broken.stdout == ""
            for name, data in contents.items():
                assert (copy / name).read_bytes() == data
                assert (copy / "by-subject" / "subject-1" / name).read_bytes() == data
        dereferenced = subprocess.run(
            ["find", str(out / "cp-L"), "-type", "f"], capture_output=True, text=True
        )
        assert len(dereferenced.stdout.split()) == 4 * len(contents)  # every alias became a copy
    finally:
        assert mounted.stop() == 0


def test_a_cram_without_t_fails_and_its_reference_is_found_by_its_arn(
    names_service: RunningService, sample: SampleFiles, tmp_path: Path
) -> None:
    """README.md, "Troubleshooting": a CRAM needs its reference, which htslib looks for at the
    header's UR path (the machine that made the CRAM) or downloads by MD5. The read set's
    referenceArn ends in the reference's ID, and ``reference-stores/<store>/by-id/<id>.fasta``
    is that reference on the mount."""
    header = subprocess.run(
        ["samtools", "view", "-H", str(sample.cram)], capture_output=True, text=True, check=True
    ).stdout
    (tmp_path / "header.sam").write_text(re.sub(r"UR:[^\t\n]*", "UR:/made/elsewhere/reference.fasta", header))
    moved = tmp_path / "moved.cram"
    with moved.open("wb") as out:
        subprocess.run(
            ["samtools", "reheader", str(tmp_path / "header.sam"), str(sample.cram)], stdout=out, check=True
        )
    load_sample(names_service.client(), names_service.s3_root, dataclasses.replace(sample, cram=moved),
                names_service.drain, part_size=65536)  # fmt: skip
    mounted = Mounted(tmp_path / "mnt", names_service.url)
    try:
        cram = mounted.path / "sequence-stores" / "demo-cohort" / "NA12878-aligned.cram"
        empty = tmp_path / "no-refs"
        empty.mkdir()
        env = {**os.environ, "REF_PATH": str(empty / "%s"), "REF_CACHE": str(empty / "%s")}  # no download
        without = subprocess.run(["samtools", "view", str(cram)], capture_output=True, text=True, env=env)
        assert without.returncode != 0
        assert "Failed to populate reference" in without.stderr
        arn = os.getxattr(cram, "user.omics.referenceArn").decode()
        fasta = mounted.path / "reference-stores" / "references" / "by-id" / f"{arn.rsplit('/', 1)[1]}.fasta"
        decoded = subprocess.run(["samtools", "view", "-T", str(fasta), str(cram)], capture_output=True,
                                 text=True, env=env)  # fmt: skip
        assert decoded.returncode == 0, decoded.stderr
        local = subprocess.run(["samtools", "view", "-T", str(sample.reference), str(sample.cram)],
                               capture_output=True, text=True, check=True)  # fmt: skip
        assert decoded.stdout == local.stdout
    finally:
        assert mounted.stop() == 0
